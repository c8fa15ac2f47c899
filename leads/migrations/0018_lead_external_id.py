# A lead's id in the system it came from, which imports match on. The column is added
# without a default (no table rewrite) and every row is NULL, so the partial unique index
# holds no entry when it is built.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0017_lead_rank"),
    ]

    operations = [
        migrations.AddField(
            model_name="lead",
            name="external_id",
            field=models.CharField(blank=True, default=None, max_length=100, null=True),
        ),
        migrations.AddConstraint(
            model_name="lead",
            constraint=models.UniqueConstraint(
                condition=models.Q(("external_id__isnull", False)),
                fields=("external_id",),
                name="lead_unique_external_id",
            ),
        ),
    ]
