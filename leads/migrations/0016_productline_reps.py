from django.conf import settings
from django.db import migrations, models


def create_join_table(apps, schema_editor):
    """Create ``crm_user_product_lines`` on a database that never had it.

    A database migrated through ``crm.0002_initial`` has the table and its rows: they stay
    as they are. One built from ``crm.0001_squashed_0006_without_leads`` (which holds nothing
    of ``leads``) gets it here, with the same name and columns.
    """
    through = apps.get_model("leads", "ProductLine")._meta.get_field("reps").remote_field.through
    if through._meta.db_table not in schema_editor.connection.introspection.table_names():
        schema_editor.create_model(through)


class Migration(migrations.Migration):
    """The relation ``crm.User.product_lines`` declared from this side as
    ``ProductLine.reps``. It uses the existing join table ``crm_user_product_lines`` with
    its columns ``user_id`` and ``productline_id``, so every rep keeps their product lines;
    a new database gets the table here."""

    dependencies = [
        ("leads", "0015_activity_times_at_most_receipt"),
        ("crm", "0006_product_lines_to_leads"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="productline",
                    name="reps",
                    field=models.ManyToManyField(
                        blank=True,
                        db_table="crm_user_product_lines",
                        related_name="product_lines",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(create_join_table, migrations.RunPython.noop, elidable=False),
    ]
