# A lead's score row leaves the score out of its indexes: the (model, score) index served
# lookups by model only, which (model, lead) serves as well. With no index on a column a
# rescore writes and free space left on each page (PostgreSQL), rewriting a score row is
# a heap-only update that adds no index entry. The free space applies to pages written
# from now on (VACUUM FULL applies it to the whole table).
from django.db import migrations, models

FILLFACTOR = 70


def leave_free_space(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE scoring_leadscore SET (fillfactor = {FILLFACTOR})")


def fill_pages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE scoring_leadscore RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0014_profile_rescore"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="leadscore",
            name="leadscore_model_score_idx",
        ),
        migrations.AddIndex(
            model_name="leadscore",
            index=models.Index(fields=["model", "lead"], name="leadscore_model_lead_idx"),
        ),
        migrations.RunPython(leave_free_space, fill_pages, elidable=False),
    ]
