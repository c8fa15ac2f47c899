from django.db import migrations, models

# The ledger's (lead, model, at) index now also holds each entry's kind and points, so
# that the score history of a lead and the reports' "points earned by then" sums (one
# per hand-off) read the index alone: the hand-off deciles fetched 343,000 heap pages
# at 16 million entries. Built CONCURRENTLY on PostgreSQL, beside the old index, which
# is dropped only once the new one serves, so the ledger is never without it and
# writes are never blocked.
NEW = "entry_lead_model_at_pts_idx"
OLD = "entry_lead_model_at_idx"


def swap(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{OLD}"')
        schema_editor.execute(
            f'CREATE INDEX "{NEW}" ON "scoring_scoreentry" ("lead_id", "model_id", "at")'
        )
        return
    schema_editor.execute(
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{NEW}" ON "scoring_scoreentry" '
        '("lead_id", "model_id", "at") INCLUDE ("kind", "points")'
    )
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{OLD}"')


def unswap(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f'CREATE INDEX {concurrently}IF NOT EXISTS "{OLD}" ON "scoring_scoreentry" '
        '("lead_id", "model_id", "at")'
    )
    schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{NEW}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("scoring", "0010_leadscore_surged_idx")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(swap, unswap, elidable=False)],
            state_operations=[
                migrations.RemoveIndex(model_name="scoreentry", name=OLD),
                migrations.AddIndex(
                    model_name="scoreentry",
                    # INCLUDE is PostgreSQL's alone: the state keeps the key columns,
                    # as for leads' report index, and warns no one on SQLite.
                    index=models.Index(fields=["lead", "model", "at"], name=NEW),
                ),
            ],
        )
    ]
