# The leads each rule matches are kept by the database from the ledger
# (scoring.models.RuleMatch, migration scoring 0028), so the reports' own copy, rebuilt
# from the whole ledger, goes; the rollup keeps only their counts per owner and day.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0002_rule_match_rollup"),
        ("scoring", "0028_rule_match"),
    ]

    operations = [migrations.DeleteModel(name="RuleMatch")]
