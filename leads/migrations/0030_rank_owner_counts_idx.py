from django.db import migrations

from crm.migration_ops import covering_index_swap

# The rank's owner index now also holds each lead's stage and band, so that counting a
# team's open and hot leads (My day for a manager) and the open leads of the reps an
# assignment rule picks among reads the index alone: a manager's team owns hundreds of
# thousands of leads.


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("leads", "0029_assignment_key_accounts")]

    operations = [
        covering_index_swap(
            model_name="leadrank",
            table="leads_leadrank",
            fields=["owner", "-score", "-lead"],
            key='("owner_id", "score" DESC, "lead_id" DESC)',
            old="rank_owner_hottest_idx",
            new="rank_owner_counts_idx",
            include=["stage", "band"],
        )
    ]
