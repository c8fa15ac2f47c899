from django.db import migrations

# The reports count every lead created in a range, a million at a time: a pass over
# the wide lead table (about 750 bytes a row) for the few columns they group and
# filter by. This index holds just those columns, so the pass is an index-only scan of
# a tenth of the pages (the table must be vacuumed for that, as autovacuum does). The
# owner comes first: a manager's or a rep's figures read their owners' ranges, and
# everyone's figures read the whole index with the range as its condition.
# PostgreSQL only (SQLite has no INCLUDE). Written here rather than in the model's Meta
# so that it is built CONCURRENTLY, without blocking writes on a big table, on
# PostgreSQL while the migration still runs on SQLite.
INDEX = "lead_report_scan_idx"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{INDEX}" ON "leads_lead" ("owner_id", '
        '"created_at") INCLUDE ("id", "stage", "score", "band", "source", "campaign", '
        '"utm_medium")'
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("leads", "0009_list_sort_and_filter_indexes")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
