# When each lead last wrote in (a demo or quote request, a trial sign-up, a form, an email
# reply it sent), on its rank: Next up reads a person's leads that wrote in lately from
# one index (rank_owner_inbound_idx), where it matched the window's inbound activity of
# everyone against all of the person's leads.
#
# Triggers on leads_activity keep it, whatever writes activities: an insert (one row or a
# whole import chunk: a statement trigger reads the new rows once, about 35 us a
# statement that adds no inbound activity, at 1,000,000 leads) raises it; a row that
# moves to another lead (a merge), changes type or time, or is deleted has its leads'
# latest inbound time read again. The triggers are created and the column filled in one
# transaction with the activity table locked against writes, so no write falls between;
# then the rank, which the fill left twice its size, is rewritten compactly.
# The types are frozen here as they were (leads.models.INBOUND_TYPES); a change to them
# needs a migration.

from django.db import migrations, models, transaction

INBOUND = ("demo_request", "quote_request", "trial_signup", "email_reply", "form_submission")


def inbound(row: str) -> str:
    """SQL: the activity ``row`` is inbound (an email reply a person logged is theirs)."""
    types = ", ".join(f"'{t}'" for t in INBOUND)
    return (
        f"({row}.type IN ({types}) "
        f"AND NOT ({row}.type = 'email_reply' AND {row}.created_by_id IS NOT NULL))"
    )


LATEST = (
    "(SELECT max(a.occurred_at) FROM leads_activity a "
    f"WHERE a.lead_id = leads_leadrank.lead_id AND {inbound('a')})"
)
CHANGED_COLUMNS = ("lead_id", "type", "occurred_at", "created_by_id")

POSTGRES_TRIGGERS = f"""
CREATE FUNCTION leads_activity_inbound_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE leads_leadrank r SET inbound_at = m.at
    FROM (SELECT n.lead_id, max(n.occurred_at) AS at FROM added n WHERE {inbound("n")}
          GROUP BY n.lead_id) m
    WHERE r.lead_id = m.lead_id AND (r.inbound_at IS NULL OR r.inbound_at < m.at);
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_activity_inbound_insert AFTER INSERT ON leads_activity
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION leads_activity_inbound_added();

CREATE FUNCTION leads_activity_inbound_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE leads_leadrank SET inbound_at = {LATEST} WHERE lead_id = OLD.lead_id;
    ELSE
        UPDATE leads_leadrank SET inbound_at = {LATEST}
        WHERE lead_id IN (OLD.lead_id, NEW.lead_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_activity_inbound_update
    AFTER UPDATE OF {", ".join(CHANGED_COLUMNS)} ON leads_activity
    FOR EACH ROW WHEN (
        ({", ".join(f"OLD.{c}" for c in CHANGED_COLUMNS)})
        IS DISTINCT FROM ({", ".join(f"NEW.{c}" for c in CHANGED_COLUMNS)})
        AND ({inbound("OLD")} OR {inbound("NEW")})
    )
    EXECUTE FUNCTION leads_activity_inbound_changed();
CREATE TRIGGER leads_activity_inbound_delete AFTER DELETE ON leads_activity
    FOR EACH ROW WHEN ({inbound("OLD")})
    EXECUTE FUNCTION leads_activity_inbound_changed();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS leads_activity_inbound_delete ON leads_activity;
DROP TRIGGER IF EXISTS leads_activity_inbound_update ON leads_activity;
DROP TRIGGER IF EXISTS leads_activity_inbound_insert ON leads_activity;
DROP FUNCTION IF EXISTS leads_activity_inbound_changed();
DROP FUNCTION IF EXISTS leads_activity_inbound_added();
"""
SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER leads_activity_inbound_insert AFTER INSERT ON leads_activity
    WHEN {inbound("NEW")} BEGIN
        UPDATE leads_leadrank SET inbound_at = NEW.occurred_at
        WHERE lead_id = NEW.lead_id AND (inbound_at IS NULL OR inbound_at < NEW.occurred_at);
    END
    """,
    f"""
    CREATE TRIGGER leads_activity_inbound_update
    AFTER UPDATE OF {", ".join(CHANGED_COLUMNS)} ON leads_activity
    WHEN {inbound("OLD")} OR {inbound("NEW")} BEGIN
        UPDATE leads_leadrank SET inbound_at = {LATEST}
        WHERE lead_id IN (OLD.lead_id, NEW.lead_id);
    END
    """,
    f"""
    CREATE TRIGGER leads_activity_inbound_delete AFTER DELETE ON leads_activity
    WHEN {inbound("OLD")} BEGIN
        UPDATE leads_leadrank SET inbound_at = {LATEST} WHERE lead_id = OLD.lead_id;
    END
    """,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS leads_activity_inbound_delete",
    "DROP TRIGGER IF EXISTS leads_activity_inbound_update",
    "DROP TRIGGER IF EXISTS leads_activity_inbound_insert",
]


def inbound_fill(apps, schema_editor):
    with transaction.atomic(using=schema_editor.connection.alias):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute("LOCK TABLE leads_activity IN SHARE ROW EXCLUSIVE MODE")
            schema_editor.execute(POSTGRES_TRIGGERS)
            schema_editor.execute(
                "UPDATE leads_leadrank r SET inbound_at = m.at "
                "FROM (SELECT a.lead_id, max(a.occurred_at) AS at FROM leads_activity a "
                f"WHERE {inbound('a')} GROUP BY a.lead_id) m WHERE r.lead_id = m.lead_id"
            )
            return
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)
        schema_editor.execute(
            f"UPDATE leads_leadrank SET inbound_at = {LATEST} "
            f"WHERE lead_id IN (SELECT a.lead_id FROM leads_activity a WHERE {inbound('a')})"
        )


def rank_compact(apps, schema_editor):
    """The fill rewrote the rank of every lead that ever wrote in (most of them, in a
    table with no free space): each a new row and a new entry in each of its indexes,
    which left the table and its indexes about twice their size. Too large, counting a
    team's leads from the owner index cost more than scanning the table (My day for a
    manager: 55 -> 150 ms at 1,000,000 leads). Rewritten compactly (writes to the rank
    wait: 7 s for a million leads), then vacuumed so its index-only scans need no heap."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("VACUUM (FULL) leads_leadrank")
        schema_editor.execute("VACUUM (ANALYZE) leads_leadrank")


def inbound_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP)
    else:
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    # VACUUM runs outside a transaction; the fill has one of its own.
    atomic = False

    dependencies = [("leads", "0030_rank_owner_counts_idx")]

    operations = [
        migrations.AddField(
            model_name="leadrank",
            name="inbound_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(inbound_fill, inbound_drop, elidable=False),
        migrations.RunPython(rank_compact, migrations.RunPython.noop, elidable=False),
        migrations.AddIndex(
            model_name="leadrank",
            index=models.Index(
                condition=models.Q(("inbound_at__isnull", False)),
                fields=["owner", "-inbound_at"],
                include=("stage",),
                name="rank_owner_inbound_idx",
            ),
        ),
        # Next up read the window's inbound activity through it; nothing else does.
        migrations.RemoveIndex(model_name="activity", name="activity_inbound_idx"),
    ]
