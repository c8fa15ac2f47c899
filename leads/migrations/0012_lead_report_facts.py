from django.db import migrations, models, transaction

# Two facts the reports count every lead by, kept on the lead from now on by every stage
# and deal write: the furthest funnel step it reached and what its deals came to. Before,
# each report aggregated the whole stage history and every deal and joined them to a
# million leads on every request. The columns have a database default, so that the
# leads written by plain SQL (bench/generate.py) start from "nothing yet" too.
#
# The backfill is one set-based UPDATE of the leads that have a history, a deal or a
# stage past "new"; the others keep the default. Then the reports' covering index is
# rebuilt with the two facts instead of the stage (which the reports no longer read),
# CONCURRENTLY on PostgreSQL (SQLite has no INCLUDE): built beside the old one, which is
# then dropped, so that the reports keep an index meanwhile.
#
# A second, partial index holds the leads that left New, the only ones with a stage
# history (nothing moves a lead back to New): the funnel's time in stage and exit
# reasons join the history to those few leads instead of scanning all of them.
INDEX = "lead_report_scan_idx"
BUILDING = "lead_report_scan_new_idx"
HISTORY_INDEX = "lead_report_history_idx"
FUNNEL = ["new", "mql", "sql", "opportunity", "customer"]
OLD_COLUMNS = '"id", "stage", "score", "band", "source", "campaign", "utm_medium"'
NEW_COLUMNS = (
    '"id", "score", "band", "source", "campaign", "utm_medium", "furthest_step", "deal_outcome"'
)


def _step(column):
    """SQL for how far along the funnel the stage in ``column`` is (0 off it)."""
    steps = " ".join(f"WHEN '{stage}' THEN {step}" for step, stage in enumerate(FUNNEL) if step)
    return f"CASE {column} {steps} ELSE 0 END"


def backfill_sql(vendor):
    """The UPDATE that sets both facts from the stage history and the deals."""
    greatest = "GREATEST" if vendor == "postgresql" else "MAX"
    history = (
        f"SELECT MAX({greatest}({_step('c.from_stage')}, {_step('c.to_stage')})) "
        "FROM leads_stagechange c WHERE c.lead_id = leads_lead.id"
    )
    won = "SELECT 1 FROM leads_deal d WHERE d.lead_id = leads_lead.id AND d.status = 'won'"
    lost = "SELECT 1 FROM leads_deal d WHERE d.lead_id = leads_lead.id AND d.status = 'lost'"
    return (
        f"UPDATE leads_lead SET furthest_step = {greatest}({_step('stage')}, "
        f"COALESCE(({history}), 0)), deal_outcome = CASE WHEN EXISTS ({won}) THEN 2 "
        f"WHEN EXISTS ({lost}) THEN 1 ELSE 0 END "
        "WHERE stage <> 'new' OR id IN (SELECT lead_id FROM leads_stagechange) "
        "OR id IN (SELECT lead_id FROM leads_deal WHERE status <> 'open')"
    )


def backfill(apps, schema_editor):
    connection = schema_editor.connection
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(backfill_sql(connection.vendor))


def _rebuild_index(schema_editor, columns):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{BUILDING}"')
    schema_editor.execute(
        f'CREATE INDEX CONCURRENTLY "{BUILDING}" ON "leads_lead" ("owner_id", "created_at") '
        f"INCLUDE ({columns})"
    )
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{INDEX}"')
    schema_editor.execute(f'ALTER INDEX "{BUILDING}" RENAME TO "{INDEX}"')


def index_facts(apps, schema_editor):
    _rebuild_index(schema_editor, NEW_COLUMNS)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{HISTORY_INDEX}" ON "leads_lead" '
            '("owner_id", "created_at") INCLUDE ("id") WHERE "stage" <> \'new\''
        )


def index_stage(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{HISTORY_INDEX}"')
    _rebuild_index(schema_editor, OLD_COLUMNS)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("leads", "0011_lead_band_stage_score_idx")]

    operations = [
        migrations.AddField(
            model_name="lead",
            name="furthest_step",
            field=models.SmallIntegerField(
                db_default=0,
                default=0,
                editable=False,
                help_text="The furthest funnel step reached, 0 (new) to 4 (customer), kept after a disqualification or a recycle.",
            ),
        ),
        migrations.AddField(
            model_name="lead",
            name="deal_outcome",
            field=models.SmallIntegerField(
                choices=[(0, "No closed deal"), (1, "Lost"), (2, "Won")],
                db_default=0,
                default=0,
                editable=False,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(index_facts, index_stage, elidable=False),
    ]
