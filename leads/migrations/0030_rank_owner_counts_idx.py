from django.db import migrations, models

# The rank's owner index now also holds each lead's stage and band, so that counting a
# team's open and hot leads (My day for a manager) and the open leads of the reps an
# assignment rule picks among reads the index alone: a manager's team owns hundreds of
# thousands of leads. Built CONCURRENTLY on PostgreSQL beside the old index, which is
# dropped once the new one serves, so the lists never lose it and writes never block.
NEW = "rank_owner_counts_idx"
OLD = "rank_owner_hottest_idx"
KEY = '("owner_id", "score" DESC, "lead_id" DESC)'


def swap(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{OLD}"')
        schema_editor.execute(f'CREATE INDEX "{NEW}" ON "leads_leadrank" {KEY}')
        return
    schema_editor.execute(
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{NEW}" ON "leads_leadrank" {KEY} '
        'INCLUDE ("stage", "band")'
    )
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{OLD}"')


def unswap(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f'CREATE INDEX {concurrently}IF NOT EXISTS "{OLD}" ON "leads_leadrank" {KEY}'
    )
    schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{NEW}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("leads", "0029_assignment_key_accounts")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(swap, unswap, elidable=False)],
            state_operations=[
                migrations.RemoveIndex(model_name="leadrank", name=OLD),
                # INCLUDE is PostgreSQL's alone: the state keeps the key columns.
                migrations.AddIndex(
                    model_name="leadrank",
                    index=models.Index(fields=["owner", "-score", "-lead"], name=NEW),
                ),
            ],
        )
    ]
