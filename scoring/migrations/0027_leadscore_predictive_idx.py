from django.db import migrations, models

# The lists sorted by the predictive score read their page from this index instead of
# every visible lead's score sorted (docs/PERFORMANCE.md, "Sorting by the predictive
# score"). Built CONCURRENTLY on PostgreSQL, so that scoring is not blocked while it is.
NAME = "leadscore_predictive_idx"
COLUMNS = '("predictive_score" DESC, "lead_id" DESC)'
CONDITION = '"is_primary" AND "predictive_score" IS NOT NULL'


def create(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f'CREATE INDEX {concurrently}IF NOT EXISTS "{NAME}" ON "scoring_leadscore" '
        f"{COLUMNS} WHERE {CONDITION}"
    )


def drop(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{NAME}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("scoring", "0026_decision_basis")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create, drop, elidable=False)],
            state_operations=[
                migrations.AddIndex(
                    model_name="leadscore",
                    index=models.Index(
                        condition=models.Q(is_primary=True, predictive_score__isnull=False),
                        fields=["-predictive_score", "-lead"],
                        name=NAME,
                    ),
                ),
            ],
        )
    ]
