"""Migrations on a database of their own: ``crm`` migrates without any higher app, and a
database from before the squash of ``crm`` (reps' product lines in ``crm``'s join table)
upgrades without losing a row.

Each test creates a PostgreSQL database, runs ``manage.py`` against it in a subprocess
and drops it afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# The migrations of ``crm`` that ``0001_squashed_0005_without_leads`` replaces: what a
# database migrated before the squash has recorded.
CRM_BEFORE_SQUASH = [
    "0001_initial",
    "0002_initial",
    "0003_api_token",
    "0004_idempotentrequest",
    "0005_team_webhooks",
]


@pytest.fixture
def scratch_database(db) -> Iterator[str]:
    """The URL of an empty database on the test server, dropped after the test."""
    settings = connection.settings_dict
    name = f"hotlist_migrations_{uuid.uuid4().hex[:12]}"
    server = _connect(settings, "postgres")
    server.autocommit = True
    with server.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    host = settings["HOST"] or "127.0.0.1"
    auth = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    try:
        yield f"postgres://{auth}@{host}:{settings['PORT'] or 5432}/{name}"
    finally:
        with server.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.close()


def _connect(settings: dict, name: str):
    return psycopg2.connect(
        dbname=name,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
    )


def manage(url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
    conn.close()
    return rows


# The tables of leads.0019 (merges and duplicates), empty after a migration.
MERGE_TABLES = (
    "leads_leadmerge",
    "leads_leadalias",
    "leads_duplicatepair",
    "leads_duplicatesettings",
    "leads_leadmatchkey",
)
# The tables of leads.0020 (duplicate companies and their merges), empty as well.
COMPANY_MERGE_TABLES = (
    "leads_companymerge",
    "leads_companyalias",
    "leads_companyduplicatepair",
    "leads_companymatchkey",
    "leads_companydomainkey",
    "leads_companynameword",
)
# The table of leads.0024 (the work queue's snoozed and skipped leads), empty as well.
QUEUE_TABLES = ("leads_queuedeferral",)
EXPORT_TABLES = ("leads_exportjob",)


def row_counts(url: str) -> dict[str, int]:
    tables = [
        name
        for (name,) in query(
            url,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
    ]
    return {table: query(url, f'SELECT count(*) FROM "{table}"')[0][0] for table in tables}


def applied(url: str, app: str) -> list[str]:
    return [
        name
        for (name,) in query(
            url, "SELECT name FROM django_migrations WHERE app = %s ORDER BY id", (app,)
        )
    ]


def join_table_columns(url: str) -> set[str]:
    return {
        name
        for (name,) in query(
            url,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'crm_user_product_lines'",
        )
    }


def test_crm_migrates_on_its_own_and_leads_brings_the_reps_product_lines(scratch_database):
    manage(scratch_database, "migrate", "crm")

    assert {"0001_squashed_0005_without_leads", "0006_product_lines_to_leads"} <= set(
        applied(scratch_database, "crm")
    )
    assert applied(scratch_database, "leads") == []
    assert not join_table_columns(scratch_database)

    manage(scratch_database, "migrate")

    assert join_table_columns(scratch_database) == {"id", "user_id", "productline_id"}


def test_a_database_from_before_the_squash_keeps_every_row(scratch_database):
    manage(scratch_database, "migrate")
    manage(scratch_database, "seed_demo", "--leads", "300", "--no-scoring")
    manage(scratch_database, "migrate", "leads", "0016")
    # The state a database migrated before the squash is in: the same tables (the join
    # table included, made by crm.0002), crm's five original migrations recorded, and
    # neither the hand-over of the product lines nor the squash.
    query(
        scratch_database,
        "DELETE FROM django_migrations WHERE (app = 'crm') "
        "OR (app = 'leads' AND name = '0016_productline_reps')",
    )
    for name in CRM_BEFORE_SQUASH:
        query(
            scratch_database,
            "INSERT INTO django_migrations (app, name, applied) VALUES ('crm', %s, now())",
            (name,),
        )
    before = row_counts(scratch_database)
    assert before["crm_user_product_lines"] > 0
    assert before["leads_lead"] == 300

    output = manage(scratch_database, "migrate")

    assert "Applying crm.0006_product_lines_to_leads... OK" in output
    assert "Applying leads.0016_productline_reps... OK" in output
    assert "squashed" not in output  # recorded as applied: its five originals are
    after = row_counts(scratch_database)
    assert after.pop("leads_leadrank") == 300  # leads.0017, applied after the squash
    # 0019, 0022, 0024, 0025
    for table in (*MERGE_TABLES, *COMPANY_MERGE_TABLES, *QUEUE_TABLES, *EXPORT_TABLES):
        assert after.pop(table) == 0
    assert after.pop("nurturing_autoenrollhold") == 0  # nurturing.0003, as well
    # leads.0021: the deal pipeline's stages and lost reasons, with their defaults
    assert after.pop("leads_dealstage") > 0
    assert after.pop("leads_lostreason") > 0
    # scoring.0019 (the score snapshots, depending on leads.0024), empty as well, and
    # scoring.0024 (the account scores)
    assert after.pop("scoring_scoresnapshot") == 0
    assert after.pop("scoring_accountscore") == 0
    # scoring.0025 (the predictive models), empty as well
    assert after.pop("scoring_predictivemodel") == 0
    # scoring.0028 (the rule matches, from an empty ledger) takes the place of the
    # reports' own copy (reports.0003)
    assert after.pop("scoring_rulematch") == 0
    assert before.pop("reports_rulematch") == 0
    # leads.0033: the deal board's totals, a row for each key of the open deals
    assert after.pop("leads_dealboardtotal") == len(query(scratch_database, DEAL_SUMS))
    # crm.0006 and the squash's own record, leads.0016 onwards, and the migrations of
    # nurturing, scoring and reports that depend on them, scoring.0032 the last to come;
    # workspace.0001 depends on crm's users alone and stays
    assert after.pop("django_migrations") == before.pop("django_migrations") + 37
    assert after == before
    assert "0001_squashed_0005_without_leads" in applied(scratch_database, "crm")
    reps_lines = query(
        scratch_database,
        "SELECT count(*) FROM crm_user_product_lines pl JOIN crm_user u ON u.id = pl.user_id",
    )
    assert reps_lines[0][0] == before["crm_user_product_lines"]


# Each lead's explanation, as the lead page and the API show it, at one fixed moment.
EXPLAIN_ALL = """
import json
from datetime import datetime, UTC
from leads.models import Lead
from scoring.explanation import lead_explanation
now = datetime(2030, 1, 1, tzinfo=UTC)
print(json.dumps({
    lead.pk: lead_explanation(lead=lead, now=now)
    for lead in Lead.objects.select_related("company").order_by("pk")
}, default=str, sort_keys=True))
"""
RANK_COLUMNS = "owner_id, stage, score, band, grade, quadrant"


def lead_columns(url: str) -> list[tuple]:
    return query(url, f"SELECT id, {RANK_COLUMNS} FROM leads_lead ORDER BY id")


def test_the_lead_rank_takes_every_scored_lead_with_the_same_score_and_explanation(
    scratch_database,
):
    manage(scratch_database, "migrate")
    manage(scratch_database, "seed_demo", "--leads", "300")
    # Read with today's code, which needs the columns of later migrations (0018, 0019): the
    # same ledger gives the same explanations before the rank is taken away.
    explanations = manage(scratch_database, "shell", "-c", EXPLAIN_ALL)
    manage(scratch_database, "migrate", "leads", "0016")
    assert query(scratch_database, "SELECT to_regclass('leads_leadrank')") == [(None,)]
    assert ("lead_hottest_idx",) in query(
        scratch_database, "SELECT indexname FROM pg_indexes WHERE tablename = 'leads_lead'"
    )
    leads = lead_columns(scratch_database)
    assert len(leads) == 300
    assert len({row[3] for row in leads}) > 10  # scored: many different scores

    output = manage(scratch_database, "migrate")

    assert "Applying leads.0017_lead_rank... OK" in output
    ranks = query(
        scratch_database, f"SELECT lead_id, {RANK_COLUMNS} FROM leads_leadrank ORDER BY 1"
    )
    assert ranks == leads == lead_columns(scratch_database)
    assert manage(scratch_database, "shell", "-c", EXPLAIN_ALL) == explanations
    manage(scratch_database, "scoring_verify")  # exits 1 on any difference
    # The triggers are in place: a write through SQL reaches the rank.
    query(scratch_database, "UPDATE leads_lead SET score = score + 1, stage = 'mql'")
    assert query(
        scratch_database, f"SELECT lead_id, {RANK_COLUMNS} FROM leads_leadrank ORDER BY 1"
    ) == lead_columns(scratch_database)


# Per (model, lead, rule): the awards less the reversals, from the ledger itself.
LEDGER_MATCHES = """
SELECT model_id, lead_id, rule_id, sum(CASE WHEN reversal_of_id IS NULL THEN 1 ELSE -1 END)
FROM scoring_scoreentry WHERE rule_id IS NOT NULL
GROUP BY 1, 2, 3 HAVING sum(CASE WHEN reversal_of_id IS NULL THEN 1 ELSE -1 END) <> 0
ORDER BY 1, 2, 3
"""
KEPT_MATCHES = "SELECT model_id, lead_id, rule_id, awards FROM scoring_rulematch ORDER BY 1, 2, 3"


def test_the_rule_matches_take_every_award_of_a_scored_ledger(scratch_database):
    manage(scratch_database, "migrate")
    manage(scratch_database, "seed_demo", "--leads", "300")
    manage(scratch_database, "migrate", "reports", "0002")
    manage(scratch_database, "migrate", "scoring", "0027")
    assert query(scratch_database, "SELECT to_regclass('scoring_rulematch')") == [(None,)]
    ledger = query(scratch_database, LEDGER_MATCHES)
    assert len(ledger) > 300  # scored: most leads match several rules

    output = manage(scratch_database, "migrate")

    assert "Applying scoring.0028_rule_match... OK" in output
    assert "Applying reports.0003_rule_matches_kept_by_scoring... OK" in output
    assert query(scratch_database, KEPT_MATCHES) == ledger
    manage(scratch_database, "scoring_verify")  # exits 1 on any difference
    # The triggers are in place: entries written, moved and deleted through SQL reach it.
    query(
        scratch_database,
        "INSERT INTO scoring_scoreentry (lead_id, model_id, rule_id, activity_id, kind, bonus, "
        "points, reason, at, created_at, reversal_of_id) "
        "SELECT lead_id, model_id, rule_id, activity_id, kind, bonus, -points, 'reversed', at, "
        "now(), id FROM scoring_scoreentry e WHERE rule_id IS NOT NULL AND id %% 3 = 0 "
        "AND reversal_of_id IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM scoring_scoreentry r WHERE r.reversal_of_id = e.id)",
    )
    query(scratch_database, "UPDATE scoring_scoreentry SET lead_id = lead_id + 1 WHERE id %% 7 = 0")
    query(
        scratch_database,
        "DELETE FROM scoring_scoreentry e WHERE id %% 11 = 0 "
        "AND NOT EXISTS (SELECT 1 FROM scoring_scoreentry r WHERE r.reversal_of_id = e.id)",
    )
    changed = query(scratch_database, LEDGER_MATCHES)
    assert changed != ledger
    assert query(scratch_database, KEPT_MATCHES) == changed


# Each lead's latest inbound activity (leads.0031's list; an email reply a person logged
# is theirs), from the activities themselves.
LATEST_INBOUND = """
SELECT l.id, max(a.occurred_at) FILTER (
    WHERE a.type IN ('demo_request', 'quote_request', 'trial_signup', 'email_reply',
                     'form_submission')
      AND NOT (a.type = 'email_reply' AND a.created_by_id IS NOT NULL))
FROM leads_lead l LEFT JOIN leads_activity a ON a.lead_id = l.id
GROUP BY l.id ORDER BY l.id
"""
KEPT_INBOUND = "SELECT lead_id, inbound_at FROM leads_leadrank ORDER BY lead_id"


def test_the_rank_takes_each_leads_latest_inbound_activity(scratch_database):
    manage(scratch_database, "migrate")
    manage(scratch_database, "seed_demo", "--leads", "300")
    manage(scratch_database, "migrate", "leads", "0030")
    latest = query(scratch_database, LATEST_INBOUND)
    assert len([at for _, at in latest if at is not None]) > 30  # leads that wrote in

    output = manage(scratch_database, "migrate")

    assert "Applying leads.0031_rank_inbound... OK" in output
    assert query(scratch_database, KEPT_INBOUND) == latest
    # The triggers are in place: activities added, moved, retyped and deleted through SQL
    # reach it.
    query(
        scratch_database,
        "INSERT INTO leads_activity (lead_id, type, url, duration_seconds, properties, "
        "occurred_at, received_at, source, idempotency_key) "
        "SELECT id, 'demo_request', '', 0, '{}', now() - (id %% 5) * interval '1 hour', "
        "now(), 'api', '' FROM leads_lead WHERE id %% 4 = 0",
    )
    query(
        scratch_database,
        "UPDATE leads_activity SET lead_id = (SELECT max(id) FROM leads_lead) WHERE id %% 7 = 0",
    )
    query(
        scratch_database,
        "UPDATE leads_activity SET type = 'page_view' WHERE type = 'form_submission' "
        "AND id %% 3 = 0",
    )
    query(scratch_database, "DELETE FROM leads_activity WHERE id %% 11 = 0")
    changed = query(scratch_database, LATEST_INBOUND)
    assert changed != latest
    assert query(scratch_database, KEPT_INBOUND) == changed


# Per deal-board key, the open deals' count and sums (leads.0033), from the deals.
DEAL_SUMS = """
SELECT stage_id, currency, lead_owner_id, owner_id, product_line_id, count(*), sum(amount),
       sum(CASE WHEN probability IS NOT NULL THEN amount * probability ELSE 0 END),
       sum(CASE WHEN probability IS NULL THEN amount ELSE 0 END)
FROM leads_deal WHERE status = 'open' GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
"""
# Open deals on every few leads, in the pipeline's stages, some with a chance of their own.
MORE_DEALS = (
    "INSERT INTO leads_deal (lead_id, name, amount, currency, status, created_at, "
    "lost_reason, stage_id, stage_changed_at, probability, owner_id) "
    "SELECT id, 'More', id %% 900, '{currency}', 'open', now(), '', "
    "(SELECT min(s.id) FROM leads_dealstage s) + leads_lead.id / {every} %% 3, now(), "
    "CASE WHEN id %% 2 = 0 THEN 40 END, owner_id FROM leads_lead WHERE id %% {every} = 0"
)
KEPT_DEAL_SUMS = """
SELECT stage_id, currency, lead_owner_id, owner_id, product_line_id, deals, amount,
       chance_amount, stage_amount
FROM leads_dealboardtotal WHERE deals <> 0 ORDER BY 1, 2, 3, 4, 5
"""


def test_the_deal_board_totals_take_every_open_deal(scratch_database):
    manage(scratch_database, "migrate")
    manage(scratch_database, "seed_demo", "--leads", "300")
    manage(scratch_database, "migrate", "leads", "0032")
    query(scratch_database, MORE_DEALS.format(every=3, currency="EUR"))
    sums = query(scratch_database, DEAL_SUMS)
    assert len(sums) > 5

    output = manage(scratch_database, "migrate")

    assert "Applying leads.0033_deal_board_totals... OK" in output
    assert query(scratch_database, KEPT_DEAL_SUMS) == sums
    # The triggers are in place: deals added, changed, closed, moved to a lead of another
    # owner and deleted through SQL reach the totals, one statement over many rows.
    query(scratch_database, MORE_DEALS.format(every=5, currency="USD"))
    query(scratch_database, "UPDATE leads_deal SET amount = amount + 7 WHERE id %% 3 = 0")
    # A deal's own chance alone: its key's count and amounts stay, its weight moves.
    query(scratch_database, "UPDATE leads_deal SET probability = 55 WHERE probability = 40")
    query(
        scratch_database,
        "UPDATE leads_deal SET status = 'lost', closed_at = now() WHERE id %% 7 = 0 "
        "AND status = 'open'",
    )
    query(
        scratch_database,
        "UPDATE leads_deal SET lead_id = (SELECT max(id) FROM leads_lead) WHERE id %% 4 = 0",
    )
    query(scratch_database, "UPDATE leads_lead SET owner_id = NULL WHERE id %% 6 = 0")
    query(scratch_database, "DELETE FROM leads_deal WHERE id %% 11 = 0")
    changed = query(scratch_database, DEAL_SUMS)
    assert changed != sums
    assert query(scratch_database, KEPT_DEAL_SUMS) == changed
    query(scratch_database, "TRUNCATE leads_deal CASCADE")
    assert query(scratch_database, "SELECT count(*) FROM leads_dealboardtotal") == [(0,)]


# The ledger's constraints but its primary key, and the unique indexes on the link from
# a reversal to its entry.
LEDGER_CONSTRAINTS = """
SELECT a.attname, c.contype FROM pg_constraint c JOIN pg_attribute a
  ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
WHERE c.conrelid = 'scoring_scoreentry'::regclass AND c.contype <> 'p'
ORDER BY 1, 2
"""
OLD_CONSTRAINTS = [("by_id", "f"), ("reversal_of_id", "f"), ("reversal_of_id", "u")]
REVERSAL_UNIQUE_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE tablename = 'scoring_scoreentry' AND indexdef LIKE 'CREATE UNIQUE INDEX%%reversal_of_id%%'
"""
SWITCH_A_RULE_OFF = """
from django.db.models import Count
from scoring.models import Rule
rule = Rule.objects.annotate(awards=Count("entries")).order_by("-awards")[0]
rule.active = False
rule.save()
"""
A_SECOND_REVERSAL = """
INSERT INTO scoring_scoreentry (lead_id, model_id, rule_id, activity_id, kind, bonus, points,
    reason, at, created_at, reversal_of_id)
SELECT lead_id, model_id, rule_id, activity_id, kind, bonus, points, 'again', at, now(),
    reversal_of_id
FROM scoring_scoreentry WHERE reversal_of_id IS NOT NULL ORDER BY id LIMIT 1
"""


def test_the_ledger_keeps_each_reversal_once_without_a_check_on_every_award(scratch_database):
    manage(scratch_database, "migrate")
    manage(scratch_database, "seed_demo", "--leads", "300")
    manage(scratch_database, "migrate", "scoring", "0031")
    # Before: a unique constraint over every entry and foreign keys, as Django made them
    assert query(scratch_database, LEDGER_CONSTRAINTS) == OLD_CONSTRAINTS
    assert query(scratch_database, REVERSAL_UNIQUE_INDEXES) == [
        (
            "scoring_scoreentry_reversal_of_id_key",
            "CREATE UNIQUE INDEX scoring_scoreentry_reversal_of_id_key "
            "ON public.scoring_scoreentry USING btree (reversal_of_id)",
        )
    ]
    # Reversals under the old constraints: a rule switched off, its awards reversed
    manage(scratch_database, "shell", "-c", SWITCH_A_RULE_OFF)
    manage(scratch_database, "rescore")
    explanations = manage(scratch_database, "shell", "-c", EXPLAIN_ALL)
    assert query(
        scratch_database,
        "SELECT count(*) > 50 FROM scoring_scoreentry WHERE reversal_of_id IS NOT NULL",
    ) == [(True,)]

    output = manage(scratch_database, "migrate")

    assert "Applying scoring.0032_ledger_lean_constraints... OK" in output
    assert query(scratch_database, LEDGER_CONSTRAINTS) == []
    assert query(scratch_database, REVERSAL_UNIQUE_INDEXES) == [
        (
            "entry_reversed_once",
            "CREATE UNIQUE INDEX entry_reversed_once ON public.scoring_scoreentry "
            "USING btree (reversal_of_id) WHERE (reversal_of_id IS NOT NULL)",
        )
    ]
    assert manage(scratch_database, "shell", "-c", EXPLAIN_ALL) == explanations
    manage(scratch_database, "scoring_verify")  # exits 1 on any difference
    # An entry is still reversed at most once
    with pytest.raises(psycopg2.errors.UniqueViolation):
        query(scratch_database, A_SECOND_REVERSAL)
    # And back: the constraints as they were, the same reversals under them
    manage(scratch_database, "migrate", "scoring", "0031")
    assert query(scratch_database, LEDGER_CONSTRAINTS) == OLD_CONSTRAINTS
    with pytest.raises(psycopg2.errors.UniqueViolation):
        query(scratch_database, A_SECOND_REVERSAL)
