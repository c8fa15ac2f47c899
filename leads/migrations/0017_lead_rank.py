# The lead's rank: its score and what the lists filter by, in a narrow row the database
# keeps (leads.models.lead_rank). The rows are written for every existing lead and the
# triggers created in one transaction with the lead table locked against writes, so no
# write falls between the copy and the triggers. Then the rank's indexes are built and
# the lead table's score-holding ones dropped, the reports' covering index rebuilt
# without the score and band (PostgreSQL), and the lead table left free space on each
# page (fillfactor) so that a score write stays on the row's page: heap-only, with no
# index entry at all. The free space applies to pages written from now on; VACUUM FULL
# leads_lead applies it to the whole table (README, "Large installations").

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

COLUMNS = ("owner_id", "stage", "score", "band", "grade", "quadrant")
FILLFACTOR = 70

POSTGRES_TRIGGERS = f"""
CREATE FUNCTION leads_lead_rank_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO leads_leadrank (lead_id, {", ".join(COLUMNS)})
        VALUES (NEW.id, {", ".join(f"NEW.{c}" for c in COLUMNS)});
    ELSE
        UPDATE leads_leadrank SET {", ".join(f"{c} = NEW.{c}" for c in COLUMNS)}
        WHERE lead_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER leads_lead_rank_insert AFTER INSERT ON leads_lead
    FOR EACH ROW EXECUTE FUNCTION leads_lead_rank_sync();
CREATE TRIGGER leads_lead_rank_update AFTER UPDATE OF {", ".join(COLUMNS)} ON leads_lead
    FOR EACH ROW WHEN ({" OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in COLUMNS)})
    EXECUTE FUNCTION leads_lead_rank_sync();
"""
POSTGRES_DROP = """
DROP TRIGGER IF EXISTS leads_lead_rank_update ON leads_lead;
DROP TRIGGER IF EXISTS leads_lead_rank_insert ON leads_lead;
DROP FUNCTION IF EXISTS leads_lead_rank_sync();
"""
SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER leads_lead_rank_insert AFTER INSERT ON leads_lead BEGIN
        INSERT INTO leads_leadrank (lead_id, {", ".join(COLUMNS)})
        VALUES (NEW.id, {", ".join(f"NEW.{c}" for c in COLUMNS)});
    END
    """,
    f"""
    CREATE TRIGGER leads_lead_rank_update AFTER UPDATE OF {", ".join(COLUMNS)} ON leads_lead
    WHEN {" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in COLUMNS)} BEGIN
        UPDATE leads_leadrank SET {", ".join(f"{c} = NEW.{c}" for c in COLUMNS)}
        WHERE lead_id = NEW.id;
    END
    """,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS leads_lead_rank_update",
    "DROP TRIGGER IF EXISTS leads_lead_rank_insert",
]
REPORT_INDEX = "lead_report_scan_idx"
REPORT_COLUMNS = {
    True: '"id", "score", "band", "source", "campaign", "utm_medium", "furthest_step", '
    '"deal_outcome"',
    False: '"id", "source", "campaign", "utm_medium", "furthest_step", "deal_outcome"',
}


def rank_fill(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute("LOCK TABLE leads_lead IN SHARE ROW EXCLUSIVE MODE")
        schema_editor.execute(POSTGRES_TRIGGERS)
    else:
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)
    schema_editor.execute(
        f"INSERT INTO leads_leadrank (lead_id, {', '.join(COLUMNS)}) "
        f"SELECT id, {', '.join(COLUMNS)} FROM leads_lead"
    )


def rank_empty(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP)
    else:
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)
    schema_editor.execute("DELETE FROM leads_leadrank")


# The list's filters on band, stage, grade and quadrant follow each other (a stage follows
# the score, as the band does): the planner needs their statistics together (migration
# 0009), now on the table the lists filter.
FILTER_STATISTICS = {"leads_lead": "lead_filter_stats", "leads_leadrank": "rank_filter_stats"}


def _filter_statistics(schema_editor, *, on, off):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP STATISTICS IF EXISTS "{FILTER_STATISTICS[off]}"')
    schema_editor.execute(
        f'CREATE STATISTICS IF NOT EXISTS "{FILTER_STATISTICS[on]}" (dependencies, mcv) '
        f'ON "band", "stage", "grade", "quadrant" FROM "{on}"'
    )


def filter_statistics_on_rank(apps, schema_editor):
    _filter_statistics(schema_editor, on="leads_leadrank", off="leads_lead")


def filter_statistics_on_lead(apps, schema_editor):
    _filter_statistics(schema_editor, on="leads_lead", off="leads_leadrank")


def _report_index(schema_editor, *, with_score):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f'DROP INDEX IF EXISTS "{REPORT_INDEX}"')
    schema_editor.execute(
        f'CREATE INDEX "{REPORT_INDEX}" ON "leads_lead" ("owner_id", "created_at") '
        f"INCLUDE ({REPORT_COLUMNS[with_score]})"
    )


def report_index_without_score(apps, schema_editor):
    _report_index(schema_editor, with_score=False)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE leads_lead SET (fillfactor = {FILLFACTOR})")


def report_index_with_score(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE leads_lead RESET (fillfactor)")
    _report_index(schema_editor, with_score=True)


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0016_productline_reps"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="LeadRank",
            fields=[
                (
                    "lead",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="rank",
                        serialize=False,
                        to="leads.lead",
                    ),
                ),
                (
                    "stage",
                    models.CharField(
                        choices=[
                            ("new", "New"),
                            ("mql", "MQL"),
                            ("sql", "SQL"),
                            ("opportunity", "Opportunity"),
                            ("customer", "Customer"),
                            ("disqualified", "Disqualified"),
                            ("recycled", "Recycled"),
                        ],
                        default="new",
                        max_length=20,
                    ),
                ),
                ("score", models.IntegerField(default=0)),
                (
                    "band",
                    models.CharField(
                        choices=[("hot", "Hot"), ("warm", "Warm"), ("cold", "Cold")],
                        default="cold",
                        max_length=10,
                    ),
                ),
                (
                    "grade",
                    models.CharField(
                        choices=[("A", "A"), ("B", "B"), ("C", "C"), ("D", "D")],
                        default="D",
                        max_length=1,
                    ),
                ),
                (
                    "quadrant",
                    models.CharField(
                        choices=[
                            ("hot", "Hot (good fit, engaged)"),
                            ("target", "Long-term target (good fit, quiet)"),
                            ("researcher", "Researcher (poor fit, engaged)"),
                            ("cold", "Cold (poor fit, quiet)"),
                        ],
                        default="cold",
                        max_length=12,
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="leadrank",
            name="owner",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(rank_fill, rank_empty, elidable=False),
        migrations.AddIndex(
            model_name="leadrank",
            index=models.Index(fields=["-score", "-lead"], name="rank_hottest_idx"),
        ),
        migrations.AddIndex(
            model_name="leadrank",
            index=models.Index(fields=["owner", "-score", "-lead"], name="rank_owner_hottest_idx"),
        ),
        migrations.AddIndex(
            model_name="leadrank",
            index=models.Index(fields=["stage", "-score", "-lead"], name="rank_stage_hottest_idx"),
        ),
        migrations.AddIndex(
            model_name="leadrank",
            index=models.Index(fields=["band", "-score", "-lead"], name="rank_band_hottest_idx"),
        ),
        migrations.AddIndex(
            model_name="leadrank",
            index=models.Index(
                condition=models.Q(("grade", "D"), _negated=True),
                fields=["grade", "-score", "-lead"],
                name="rank_grade_hottest_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="leadrank",
            index=models.Index(
                condition=models.Q(("quadrant", "cold"), _negated=True),
                fields=["quadrant", "-score", "-lead"],
                name="rank_quadrant_hottest_idx",
            ),
        ),
        migrations.RunPython(filter_statistics_on_rank, filter_statistics_on_lead, elidable=False),
        migrations.RemoveIndex(
            model_name="lead",
            name="lead_hottest_idx",
        ),
        migrations.RemoveIndex(
            model_name="lead",
            name="lead_owner_hottest_idx",
        ),
        migrations.RemoveIndex(
            model_name="lead",
            name="lead_stage_score_idx",
        ),
        migrations.RemoveIndex(
            model_name="lead",
            name="lead_band_score_idx",
        ),
        migrations.RemoveIndex(
            model_name="lead",
            name="lead_pool_hottest_idx",
        ),
        migrations.RemoveIndex(
            model_name="lead",
            name="lead_grade_score_idx",
        ),
        migrations.RemoveIndex(
            model_name="lead",
            name="lead_quadrant_score_idx",
        ),
        migrations.RemoveIndex(
            model_name="lead",
            name="lead_band_stage_score_idx",
        ),
        migrations.RunPython(report_index_without_score, report_index_with_score, elidable=False),
    ]
