from django.db import migrations, models

# The ledger's (lead, model, at) index now holds everything a lead page reads of a
# lead's entries: each entry's id, rule, kind, points, when it was written and the entry
# it reverses. The explanation (the active entries, by rule) and the score history (every
# entry) then read the index alone, a few contiguous pages, where they fetched a heap page
# per entry: the rep's hottest leads hold thousands of entries spread over a ledger of
# millions. Built CONCURRENTLY on PostgreSQL beside the old index, which is dropped only
# once the new one serves, so the ledger is never without it and writes never block.
NEW = "entry_lead_ledger_idx"
OLD = "entry_lead_model_at_pts_idx"
INCLUDE = '("id", "rule_id", "kind", "points", "created_at", "reversal_of_id")'


def swap(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{OLD}"')
        schema_editor.execute(
            f'CREATE INDEX "{NEW}" ON "scoring_scoreentry" ("lead_id", "model_id", "at")'
        )
        return
    schema_editor.execute(
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{NEW}" ON "scoring_scoreentry" '
        f'("lead_id", "model_id", "at") INCLUDE {INCLUDE}'
    )
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{OLD}"')


def unswap(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{NEW}"')
        schema_editor.execute(
            f'CREATE INDEX "{OLD}" ON "scoring_scoreentry" ("lead_id", "model_id", "at")'
        )
        return
    schema_editor.execute(
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{OLD}" ON "scoring_scoreentry" '
        '("lead_id", "model_id", "at") INCLUDE ("kind", "points")'
    )
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{NEW}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("scoring", "0029_rescorejob_accounts_pending")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(swap, unswap, elidable=False)],
            state_operations=[
                migrations.RemoveIndex(model_name="scoreentry", name=OLD),
                # INCLUDE is PostgreSQL's alone: the state keeps the key columns.
                migrations.AddIndex(
                    model_name="scoreentry",
                    index=models.Index(fields=["lead", "model", "at"], name=NEW),
                ),
            ],
        )
    ]
