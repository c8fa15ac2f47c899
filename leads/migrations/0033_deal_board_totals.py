# The deal board's column totals, kept by the database (leads.models.DealBoardTotal):
# what the open deals of each stage, currency, lead owner, deal owner and product line
# come to. Triggers on the deal table add each statement's open deals to their key and
# take away what they were, whatever writes them: on PostgreSQL once per statement over
# its transition tables (an import chunk or a merge pays one upsert a key, in key order
# so that two writers never wait on each other crosswise; a TRUNCATE empties them), on
# SQLite once per row. The totals are filled and the triggers created in one transaction
# with the deal table locked against writes, so no write falls between.
#
# Beside them an index of the open deals by stage and idle time, holding what the
# board's filters read: the rotting count reads each stage's idle deals from it alone.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

KEY = ("stage_id", "currency", "lead_owner_id", "owner_id", "product_line_id")
KEYS = ", ".join(KEY)
TOTALS = "deals, amount, chance_amount, stage_amount"


def sums(sign: str) -> str:
    """SQL: the totals (``TOTALS``) of the open deals selected, each counted ``sign``
    times."""
    return (
        f"sum({sign}) AS deals, sum({sign} * amount) AS amount, "
        f"sum(CASE WHEN probability IS NOT NULL THEN {sign} * amount * probability ELSE 0 END)"
        " AS chance_amount, "
        f"sum(CASE WHEN probability IS NULL THEN {sign} * amount ELSE 0 END) AS stage_amount"
    )


def upsert(rows: str) -> str:
    """PostgreSQL: add ``rows`` (deals with a ``sign`` column) to their keys' totals,
    leaving out the keys whose totals the statement does not move (a deal renamed, or
    closed and reopened in one statement)."""
    return f"""
        INSERT INTO leads_dealboardtotal AS t ({KEYS}, {TOTALS})
        SELECT {KEYS}, {TOTALS} FROM (
            SELECT {KEYS}, {sums("sign")}
            FROM ({rows}) d WHERE status = 'open'
            GROUP BY {KEYS}
        ) moved
        WHERE ({TOTALS}) <> (0, 0, 0, 0)
        ORDER BY {KEYS}
        ON CONFLICT ({KEYS}) DO UPDATE SET
            deals = t.deals + EXCLUDED.deals,
            amount = t.amount + EXCLUDED.amount,
            chance_amount = t.chance_amount + EXCLUDED.chance_amount,
            stage_amount = t.stage_amount + EXCLUDED.stage_amount;"""


COLUMNS = f"{KEYS}, status, amount, probability"
POSTGRES_TRIGGERS = f"""
CREATE FUNCTION leads_deal_board_totals_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM leads_dealboardtotal;
    ELSIF TG_OP = 'INSERT' THEN
        {upsert(f"SELECT {COLUMNS}, 1 AS sign FROM added")}
    ELSIF TG_OP = 'DELETE' THEN
        {upsert(f"SELECT {COLUMNS}, -1 AS sign FROM removed")}
    ELSE
        {
    upsert(
        f"SELECT {COLUMNS}, 1 AS sign FROM added "
        f"UNION ALL SELECT {COLUMNS}, -1 AS sign FROM removed"
    )
}
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_deal_board_totals_insert AFTER INSERT ON leads_deal
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION leads_deal_board_totals_keep();
CREATE TRIGGER leads_deal_board_totals_update AFTER UPDATE ON leads_deal
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION leads_deal_board_totals_keep();
CREATE TRIGGER leads_deal_board_totals_delete AFTER DELETE ON leads_deal
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
    EXECUTE FUNCTION leads_deal_board_totals_keep();
CREATE TRIGGER leads_deal_board_totals_truncate AFTER TRUNCATE ON leads_deal
    FOR EACH STATEMENT EXECUTE FUNCTION leads_deal_board_totals_keep();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS leads_deal_board_totals_truncate ON leads_deal;
DROP TRIGGER IF EXISTS leads_deal_board_totals_delete ON leads_deal;
DROP TRIGGER IF EXISTS leads_deal_board_totals_update ON leads_deal;
DROP TRIGGER IF EXISTS leads_deal_board_totals_insert ON leads_deal;
DROP FUNCTION IF EXISTS leads_deal_board_totals_keep();
"""


def sqlite_add(row: str, sign: int) -> str:
    """SQLite: add the deal ``row`` (NEW or OLD), when open, ``sign`` times to its key's
    totals, creating the key's row first."""
    table = "leads_dealboardtotal"
    same = " AND ".join(f"{table}.{column} IS {row}.{column}" for column in KEY)
    values = ", ".join(f"{row}.{column}" for column in KEY)
    return f"""
        INSERT INTO {table} ({KEYS}, {TOTALS})
        SELECT {values}, 0, 0, 0, 0
        WHERE {row}.status = 'open' AND NOT EXISTS (SELECT 1 FROM {table} WHERE {same});
        UPDATE {table} SET
            deals = deals + {sign},
            amount = amount + {sign} * {row}.amount,
            chance_amount = chance_amount
                + CASE WHEN {row}.probability IS NOT NULL
                       THEN {sign} * {row}.amount * {row}.probability ELSE 0 END,
            stage_amount = stage_amount
                + CASE WHEN {row}.probability IS NULL THEN {sign} * {row}.amount ELSE 0 END
        WHERE {row}.status = 'open' AND {same};"""


SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER leads_deal_board_totals_insert AFTER INSERT ON leads_deal
    WHEN NEW.status = 'open' BEGIN {sqlite_add("NEW", 1)}
    END
    """,
    f"""
    CREATE TRIGGER leads_deal_board_totals_update AFTER UPDATE ON leads_deal
    WHEN OLD.status = 'open' OR NEW.status = 'open' BEGIN
        {sqlite_add("OLD", -1)}
        {sqlite_add("NEW", 1)}
    END
    """,
    f"""
    CREATE TRIGGER leads_deal_board_totals_delete AFTER DELETE ON leads_deal
    WHEN OLD.status = 'open' BEGIN {sqlite_add("OLD", -1)}
    END
    """,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS leads_deal_board_totals_delete",
    "DROP TRIGGER IF EXISTS leads_deal_board_totals_update",
    "DROP TRIGGER IF EXISTS leads_deal_board_totals_insert",
]
FILL = (
    f"INSERT INTO leads_dealboardtotal ({KEYS}, {TOTALS}) "
    f"SELECT {KEYS}, {sums('1')} FROM leads_deal WHERE status = 'open' GROUP BY {KEYS}"
)


def totals_keep(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("LOCK TABLE leads_deal IN SHARE ROW EXCLUSIVE MODE")
        schema_editor.execute(POSTGRES_TRIGGERS)
    else:
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)
    schema_editor.execute(FILL)


def totals_drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP)
    else:
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)


def key_field(to: str) -> models.ForeignKey:
    return models.ForeignKey(
        db_constraint=False,
        db_index=False,
        null=True,
        on_delete=django.db.models.deletion.DO_NOTHING,
        related_name="+",
        to=to,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0032_rank_stage_filters_idx"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="DealBoardTotal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("stage", key_field("leads.dealstage")),
                ("currency", models.CharField(max_length=3)),
                ("lead_owner", key_field(settings.AUTH_USER_MODEL)),
                ("owner", key_field(settings.AUTH_USER_MODEL)),
                ("product_line", key_field("leads.productline")),
                ("deals", models.IntegerField(default=0)),
                ("amount", models.DecimalField(decimal_places=2, default=0, max_digits=20)),
                (
                    "chance_amount",
                    models.DecimalField(decimal_places=2, default=0, max_digits=24),
                ),
                ("stage_amount", models.DecimalField(decimal_places=2, default=0, max_digits=20)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("stage", "currency", "lead_owner", "owner", "product_line"),
                        name="deal_board_total_key",
                        nulls_distinct=False,
                    )
                ],
            },
        ),
        migrations.AddIndex(
            model_name="deal",
            index=models.Index(
                condition=models.Q(("status", "open")),
                fields=["stage", "stage_changed_at"],
                include=("lead_owner", "owner", "product_line"),
                name="deal_open_idle_idx",
            ),
        ),
        migrations.RunPython(totals_keep, totals_drop_triggers, elidable=False),
    ]
