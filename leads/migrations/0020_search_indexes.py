# The search (leads.search) on PostgreSQL: a deal's name by LOWER(name) LIKE '%term%',
# answered by a trigram index as the lead's names and email are (leads.0008), and a
# phone number by the end of the stored number's digits, answered as a prefix of the
# digits reversed by a B-tree. The phone column changes rarely, so score writes to the
# lead row stay in place (heap-only). SQLite has neither and runs the same searches
# without them.

from django.db import migrations

INDEXES = {
    "deal_name_trgm_idx": (
        'CREATE INDEX IF NOT EXISTS "deal_name_trgm_idx" ON "leads_deal" '
        'USING gin (LOWER("name") gin_trgm_ops)'
    ),
    "lead_phone_digits_idx": (
        'CREATE INDEX IF NOT EXISTS "lead_phone_digits_idx" ON "leads_lead" '
        "(REVERSE(REGEXP_REPLACE(\"phone\", '[^0-9]', '', 'g')) text_pattern_ops)"
    ),
}


def create_search_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in INDEXES.values():
        schema_editor.execute(statement)


def drop_search_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0019_lead_merge"),
    ]

    operations = [
        migrations.RunPython(create_search_indexes, drop_search_indexes, elidable=False),
    ]
