"""A large benchmark world generated inside PostgreSQL with ``generate_series``.

``seed_demo`` builds a realistic world row by row in Python (about 10,000 activities
a second); a benchmark with 20 million activities needs a faster way. This writes
companies, leads and activities with set-based INSERT … SELECT, deterministically
(``setseed``), with the activity mix of a B2B website: mostly page views (pricing,
features, blog, careers), email opens and clicks, a few webinars, downloads, demo
and quote requests and unsubscribes, spread over the last 180 days.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from leads.models import Activity, Lead

SENIORITY = [
    "c_level",
    "vp",
    "director",
    "manager",
    "manager",
    "individual",
    "individual",
    "student",
    "",
]
INDUSTRY = [
    "software",
    "finance",
    "healthcare",
    "manufacturing",
    "retail",
    "education",
    "media",
    "other",
]
BUDGET = ["", "", "none", "under_10k", "10k_50k", "50k_250k", "over_250k"]
TIMELINE = ["", "now", "quarter", "half_year", "year", "later"]
COUNTRY = ["DE", "US", "GB", "FR", "NL", "ES", "IT", "SE"]
# A prime: multiplying by it modulo the number of leads (not one of its multiples)
# permutes the leads.
LEAD_PERMUTATION = 1_000_003

# (cumulative share, type, url) of the activity mix.
ACTIVITY_MIX = [
    (0.06, "page_view", "https://hotlist.example/pricing"),
    (0.12, "page_view", "https://hotlist.example/features"),
    (0.40, "page_view", "https://hotlist.example/blog/lead-scoring"),
    (0.43, "page_view", "https://hotlist.example/careers"),
    (0.48, "page_view", "https://hotlist.example/"),
    (0.68, "email_open", ""),
    (0.78, "email_click", ""),
    (0.81, "webinar_registration", ""),
    (0.86, "webinar_attendance", ""),
    (0.90, "content_download", ""),
    (0.94, "form_submission", ""),
    (0.955, "demo_request", ""),
    (0.962, "quote_request", ""),
    (0.966, "trial_signup", ""),
    (0.97, "unsubscribe", ""),
    (0.975, "email_bounce", ""),
    (1.0, "social_engagement", ""),
]


def _pick(values: list[str], random_sql: str = "random()") -> str:
    array = "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"
    return f"({array})[1 + floor({random_sql} * {len(values)})::int]"


def _activity_case(column: int) -> str:
    """The type (column 0) or URL (column 1) of the mix, drawn by the row's ``r``."""
    cases = " ".join(
        f"WHEN r < {share} THEN '{(kind, url)[column]}'" for share, kind, url in ACTIVITY_MIX
    )
    return f"CASE {cases} END"


def generate(
    *, leads: int, activities_per_lead: int, seed: float = 0.42, skew: float = 1.0
) -> None:
    """Fill an empty database with ``leads`` leads and ``leads * activities_per_lead``
    activities (already scored: the benchmark's rescore is what scores them).

    With ``skew`` 1 every lead gets the same number of activities. Above 1 they follow
    a long tail, as on a real site: the share of activities falling to the most active
    fraction ``p`` of leads is ``p ** (1 / skew)`` (with 2, the top 1 % get 10 % of them),
    the busy leads spread over the id range by a multiplicative permutation.
    """
    if Lead.objects.exists():
        raise RuntimeError("The benchmark database already has leads.")
    companies = max(leads // 20, 1)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed])
        cursor.execute(
            f"""
            INSERT INTO leads_company (name, domain, industry, employee_count, annual_revenue,
                                       country, region, city, created_at)
            SELECT 'Company ' || g, 'company' || g || '.example', {_pick(INDUSTRY)},
                   floor(exp(random() * 9))::int, NULL, {_pick(COUNTRY)}, '', '', now()
            FROM generate_series(1, %s) g
            """,
            [companies],
        )
        cursor.execute("SELECT min(id) FROM leads_company")
        first_company = cursor.fetchone()[0]
        cursor.execute(
            f"""
            INSERT INTO leads_lead (
                first_name, last_name, email, phone, job_title, seniority, department,
                country, region, city, source, campaign, utm_source, utm_medium, utm_campaign,
                utm_term, utm_content, budget, authority, need, timeline, stage,
                stage_changed_at, disqualification_reason, email_status, custom_fields,
                score, fit_score, engagement_score, band, grade, quadrant,
                created_at, updated_at, company_id)
            SELECT 'Lead', 'Number ' || g,
                   'lead' || g || '@' || CASE WHEN random() < 0.12 THEN 'gmail.com'
                                              ELSE 'company' || (g %% %s + 1) || '.example' END,
                   CASE WHEN random() < 0.6 THEN '+49 30 ' || g ELSE '' END,
                   'Title ' || (g %% 50), {_pick(SENIORITY)}, '', {_pick(COUNTRY)}, '', '',
                   'website', '', '', '', '', '', '', {_pick(BUDGET)},
                   CASE WHEN random() < 0.2 THEN 'decision_maker' ELSE '' END, '',
                   {_pick(TIMELINE)}, 'new', now(), '', 'valid', '{{}}'::jsonb,
                   0, 0, 0, 'cold', 'D', 'cold',
                   now() - random() * interval '180 days', now(), %s + (g %% %s)
            FROM generate_series(1, %s) g
            """,
            [companies, first_company, companies, leads],
        )
        cursor.execute("SELECT min(id) FROM leads_lead")
        first_lead = cursor.fetchone()[0]
        if skew == 1:
            lead_of_g, lead_params = "(g - 1) / %s", [activities_per_lead]
        else:
            lead_of_g = "(floor(%s * power(random(), %s))::bigint * %s) %% %s"
            lead_params = [leads, skew, LEAD_PERMUTATION, leads]
        cursor.execute(
            f"""
            INSERT INTO leads_activity (lead_id, type, url, duration_seconds, properties,
                                        occurred_at, received_at, source, idempotency_key,
                                        scored_at, created_by_id)
            SELECT %s + {lead_of_g}, {_activity_case(0)}, {_activity_case(1)},
                   (random() * 300)::int, '{{}}'::jsonb, at, at, 'bench', '', now(), NULL
            FROM (SELECT g, random() AS r,
                         now() - random() * interval '180 days' AS at
                  FROM generate_series(1, %s) g) s
            """,
            [first_lead, *lead_params, leads * activities_per_lead],
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE leads_lead")
        cursor.execute("VACUUM ANALYZE leads_activity")
        cursor.execute("VACUUM ANALYZE leads_company")


def counts() -> tuple[int, int]:
    return Lead.objects.count(), Activity.objects.count()


# --- The rep workspace: people, scores, owners, stages, hand-offs, tasks ----------------

SOURCES = ["website", "organic_search", "paid_search", "social", "email", "referral", "event"]
PRODUCT_LINES = [("analytics", "Analytics"), ("automation", "Automation"), ("api", "API")]
BENCH_PASSWORD = "bench"


@dataclass(frozen=True)
class Cast:
    """The people of the benchmark world: an admin, a manager per team and its reps."""

    admin: int
    managers: list[int]
    reps: list[int]


def people(*, teams: int = 2, reps_per_team: int = 10) -> Cast:
    """Create (or find) the admin, the teams, their managers and reps; one password hash."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from crm.models import Role, Team, User

    password = make_password(BENCH_PASSWORD)

    def user(username: str, role: Role | None, team: Team | None = None) -> User:
        person, _ = User.objects.get_or_create(
            username=username,
            defaults={
                "password": password,
                "first_name": username.capitalize(),
                "email": f"{username}@bench.example",
                "is_staff": role != Role.REP,
                "is_superuser": role is None,
                "team": team,
            },
        )
        if role is not None:
            person.groups.add(Group.objects.get(name=role.label))
        return person

    admin = user("admin", None)
    managers, reps = [], []
    for t in range(1, teams + 1):
        team, _ = Team.objects.get_or_create(name=f"Team {t}")
        manager = user(f"manager{t}", Role.MANAGER, team)
        if team.manager_id != manager.pk:
            team.manager = manager
            team.save(update_fields=["manager"])
        managers.append(manager.pk)
        for r in range(1, reps_per_team + 1):
            reps.append(user(f"rep{(t - 1) * reps_per_team + r}", Role.REP, team).pk)
    return Cast(admin=admin.pk, managers=managers, reps=reps)


def score_all(
    *, id_range: int = 20_000, processes: int = 2, progress: Callable[[str], None] = print
) -> None:
    """Score every lead with the active default model through the set-based rescore of
    ``scoring.bulk``, range by range, without the per-lead reactions (stage moves,
    hand-offs, nurture enrolments) a rescore job runs: ``workspace`` sets stages itself.

    The ranges are shared by ``processes`` forked processes, as that many bulk workers
    share a rescore job's ranges."""
    from django.db import connections
    from django.db.models import Max, Min

    from scoring.accounts import accounts_refresh_all
    from scoring.bulk import refresh_statistics
    from scoring.models import ScoringModel

    model_id = ScoringModel.objects.get(is_default=True).pk
    bounds = Lead.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    now = timezone.now()
    total = bounds["hi"] - bounds["lo"] + 1
    ranges = list(range(bounds["lo"], bounds["hi"] + 1, id_range))
    refresh_statistics()
    connections.close_all()  # each process opens its own
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        arguments = [(model_id, lo, lo + id_range - 1, now) for lo in ranges]
        for done, lo in enumerate(pool.imap_unordered(_score_range, arguments), 1):
            scored = min(done * id_range, total)
            progress(f"  scored {scored:,} of {total:,} leads (range from {lo:,})")
    # As a rescore job: every company's account summed once at the end.
    accounts_refresh_all(now=now)


def _score_range(arguments: tuple[int, int, int, datetime]) -> int:
    """One range of ``score_all``, in a pool process."""
    from scoring.bulk import refresh_statistics, rescore_range
    from scoring.ruleset import load_ruleset

    model_id, lo, hi, now = arguments
    compiled = next(m for m in load_ruleset(fresh=True).models if m.id == model_id)
    refresh_statistics()
    with transaction.atomic():
        rescore_range(model=compiled, segment_ids=[], lo=lo, hi=hi, now=now, accounts_at_most=0)
    return lo


def workspace(
    *,
    cast: Cast,
    unassigned_share: float = 0.3,
    seed: float = 0.24,
    progress: Callable[[str], None] = print,
) -> None:
    """Give the scored leads what the rep pages show, set-based: an owner (a rep, or
    none for ``unassigned_share`` of them), a source, a stage that follows the score
    (with its stage change), first and last activity times, product interests; and per
    person hand-offs (a few waiting), tasks (overdue, due today, later, done), notes,
    deals (open ones in the pipeline's stages, won ones on customers, lost ones on some
    recycled and disqualified leads), and notifications; then the leads' furthest funnel
    step and deal outcome."""
    from leads.deals import deal_pipeline_ensure
    from leads.models import ProductLine
    from scoring.models import ScoringModel

    model = ScoringModel.objects.get(is_default=True)
    reps = cast.reps
    stages = [stage.pk for stage in deal_pipeline_ensure()]
    for slug, name in PRODUCT_LINES:
        ProductLine.objects.get_or_create(slug=slug, defaults={"name": name})
    lines = list(ProductLine.objects.values_list("pk", flat=True))
    steps = [
        (
            "owners, stages, sources, activity times",
            _LEADS_SQL,
            [
                seed,
                model.sql_threshold,
                model.mql_threshold,
                unassigned_share,
                reps,
                len(reps),
                SOURCES,
                len(SOURCES),
            ],
        ),
        ("stage changes", _STAGE_CHANGES_SQL, []),
        ("product interests", _INTERESTS_SQL, []),
        ("hand-offs", _HANDOFFS_SQL, [reps]),
        ("tasks", _TASKS_SQL, [reps, cast.managers]),
        ("notes", _NOTES_SQL, [reps]),
        ("deals", _DEALS_SQL, [stages, len(stages), lines, len(lines)]),
        ("notifications", _NOTIFICATIONS_SQL, [reps + cast.managers]),
    ]
    for what, sql, params in steps:
        start = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '256MB'")
            if what.startswith("owners"):
                cursor.execute("SELECT setseed(%s)", [params.pop(0)])
            cursor.execute(sql, params)
            rows = cursor.rowcount
        progress(f"  {what}: {rows:,} rows in {time.perf_counter() - start:.0f} s")
    # The stages and deals above were written around the models: their leads' report
    # facts are set from them afterwards, set-based, as the models would have kept them.
    start = time.perf_counter()
    with transaction.atomic():
        rows = Lead.objects.refresh_facts()
    progress(f"  lead facts: {rows:,} rows in {time.perf_counter() - start:.0f} s")
    analyze(vacuum=True)


def analyze(*, vacuum: bool = False) -> None:
    """Fresh statistics (and, with ``vacuum``, dead rows cleared) on the tables the pages
    read: this server runs without autovacuum."""
    tables = [
        "leads_lead",
        "leads_leadrank",
        "leads_activity",
        "leads_company",
        "leads_stagechange",
        "leads_handoff",
        "leads_task",
        "leads_note",
        "leads_deal",
        "leads_notification",
        "leads_lead_product_interests",
        "scoring_scoreentry",
        "scoring_leadscore",
    ]
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"{'VACUUM ' if vacuum else ''}ANALYZE {table}")


_LEADS_SQL = """
WITH acts AS (
    SELECT lead_id, min(occurred_at) AS first_at, max(occurred_at) AS last_at
    FROM leads_activity GROUP BY lead_id
), drawn AS (
    SELECT l.id, l.created_at, random() AS r, random() AS o, random() AS t, random() AS s,
           CASE WHEN l.score >= %s THEN 'high' WHEN l.score >= %s THEN 'mid' ELSE 'low' END
               AS level
    FROM leads_lead l
), staged AS (
    SELECT d.*, a.first_at, a.last_at,
           CASE d.level
               WHEN 'high' THEN CASE WHEN d.r < 0.45 THEN 'sql' WHEN d.r < 0.75 THEN 'opportunity'
                                     WHEN d.r < 0.9 THEN 'customer' ELSE 'recycled' END
               WHEN 'mid' THEN CASE WHEN d.r < 0.8 THEN 'mql' WHEN d.r < 0.85 THEN 'disqualified'
                                    ELSE 'recycled' END
               ELSE CASE WHEN d.r < 0.88 THEN 'new' WHEN d.r < 0.95 THEN 'disqualified'
                         ELSE 'recycled' END
           END AS stage
    FROM drawn d LEFT JOIN acts a ON a.lead_id = d.id
)
UPDATE leads_lead l SET
    owner_id = CASE WHEN s.o < %s THEN NULL
                    ELSE (%s::bigint[])[1 + floor(s.o * 1000000)::int %% %s] END,
    source = (%s::text[])[1 + floor(s.s * %s)::int],
    stage = s.stage,
    stage_changed_at = CASE WHEN s.stage = 'new' THEN s.created_at
                            ELSE s.created_at + s.t * (now() - s.created_at) END,
    disqualification_reason = CASE WHEN s.stage = 'disqualified' THEN 'Not a fit' ELSE '' END,
    first_activity_at = s.first_at,
    last_activity_at = s.last_at
FROM staged s WHERE s.id = l.id
"""

_STAGE_CHANGES_SQL = """
INSERT INTO leads_stagechange (lead_id, from_stage, to_stage, at, by_id, reason)
SELECT id, 'new', stage, stage_changed_at, NULL, 'Score crossed the threshold'
FROM leads_lead WHERE stage <> 'new'
"""

_INTERESTS_SQL = """
INSERT INTO leads_lead_product_interests (lead_id, productline_id)
SELECT l.id, p.id FROM leads_lead l
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM leads_productline) p
  ON p.n = l.id %% 3
WHERE l.id %% 5 = 0
"""

# Each rep's SQL-or-later leads were handed off to them and accepted; their five latest
# SQL leads still wait for acceptance, within or past the 24-hour SLA.
_HANDOFFS_SQL = """
INSERT INTO leads_handoff (lead_id, stage_change_id, stage, owner_id, assigned_by, status,
                           created_at, assigned_at, notified_at, sla_due_at, accepted_at,
                           rejected_at, reject_reason, closed_by_id, escalated_at,
                           escalated_to_id, first_touch_at, task_id)
SELECT lead_id, change_id, 'sql', owner_id, 'round robin',
       CASE WHEN waiting THEN 'pending' ELSE 'accepted' END,
       at, at, at, at + interval '24 hours',
       CASE WHEN waiting THEN NULL ELSE at + interval '2 hours' END,
       NULL, '', CASE WHEN waiting THEN NULL ELSE owner_id END, NULL, NULL, NULL, NULL
FROM (
    SELECT l.id AS lead_id, c.id AS change_id, l.owner_id,
           row_number() OVER (PARTITION BY l.owner_id, l.stage = 'sql'
                              ORDER BY l.stage_changed_at DESC) <= 5
               AND l.stage = 'sql' AS waiting,
           c.at
    FROM leads_lead l JOIN leads_stagechange c ON c.lead_id = l.id
    WHERE l.owner_id = ANY(%s) AND l.stage IN ('sql', 'opportunity', 'customer')
) h
"""

# Per rep, tasks on their 60 hottest leads: 40 open (due from five days ago to a week
# ahead, eight hours apart) and 20 done; per manager 20 open ones on the hottest pool leads.
_TASKS_SQL = """
INSERT INTO leads_task (lead_id, assignee_id, title, kind, due_at, done_at, created_at)
SELECT lead_id, person, 'Call back ' || lead_id, 'call',
       now() + (n - 15) * interval '8 hours',
       CASE WHEN n > 40 THEN now() - n * interval '1 hour' END,
       now() - interval '10 days'
FROM (
    SELECT u.person, x.id AS lead_id, row_number() OVER (PARTITION BY u.person) AS n
    FROM unnest(%s::bigint[]) AS u(person)
    CROSS JOIN LATERAL (SELECT id FROM leads_lead WHERE owner_id = u.person
                        ORDER BY score DESC, id DESC LIMIT 60) x
    UNION ALL
    SELECT m.person, x.id, row_number() OVER (PARTITION BY m.person)
    FROM unnest(%s::bigint[]) AS m(person)
    CROSS JOIN LATERAL (SELECT id FROM leads_lead WHERE owner_id IS NULL
                        ORDER BY score DESC, id DESC LIMIT 20) x
) t
"""

_NOTES_SQL = """
INSERT INTO leads_note (lead_id, author_id, body, created_at)
SELECT x.id, u.person, 'Spoke to them about ' || x.id || '; call again next week.',
       now() - interval '3 days'
FROM unnest(%s::bigint[]) AS u(person)
CROSS JOIN LATERAL (SELECT id FROM leads_lead WHERE owner_id = u.person
                    ORDER BY score DESC, id DESC LIMIT 60) x
"""

# Open deals on every opportunity, SQL and MQL and on three in a thousand new leads (a
# deal opened on a first request), in a stage of the pipeline, a fifth of them idle for up
# to 60 days, expected to close from 20 days ago to 100 ahead; won ones on customers, lost
# ones on a fifth of the recycled and disqualified leads. Owned by the lead's owner,
# mostly in EUR, some USD and GBP, in the three product lines.
_DEALS_SQL = """
INSERT INTO leads_deal (lead_id, name, amount, currency, status, created_at, closed_at,
                        lost_reason, stage_id, stage_changed_at, expected_close,
                        probability, product_line_id, owner_id)
SELECT id, 'Deal ' || id, 500 + floor(r * 40) * 250,
       CASE WHEN c < 0.8 THEN 'EUR' WHEN c < 0.93 THEN 'USD' ELSE 'GBP' END,
       status, stage_changed_at,
       CASE WHEN status <> 'open' THEN stage_changed_at + interval '20 days' END,
       CASE WHEN status = 'lost' THEN 'Price too high' ELSE '' END,
       (%s::bigint[])[1 + floor(s * %s)::int],
       CASE WHEN status <> 'open' THEN stage_changed_at
            WHEN i < 0.2 THEN now() - random() * interval '60 days'
            ELSE now() - random() * interval '10 days' END,
       (now() + (random() * 120 - 20) * interval '1 day')::date,
       CASE WHEN p < 0.1 THEN floor(p * 1000)::int END,
       (%s::bigint[])[1 + floor(random() * %s)::int], owner_id
FROM (
    SELECT id, owner_id, stage_changed_at, random() AS r, random() AS c, random() AS s,
           random() AS i, random() AS p,
           CASE WHEN stage = 'customer' THEN 'won'
                WHEN stage IN ('recycled', 'disqualified') THEN 'lost' ELSE 'open' END AS status
    FROM leads_lead
    WHERE stage IN ('opportunity', 'sql', 'mql', 'customer')
       OR (stage = 'new' AND random() < 0.003)
       OR (stage IN ('recycled', 'disqualified') AND random() < 0.2)
) d
"""

_NOTIFICATIONS_SQL = """
INSERT INTO leads_notification (user_id, kind, title, body, url, lead_id, created_at, read_at,
                                emailed_at, email_pending)
SELECT h.owner_id, 'handoff', 'Lead handed off to you', '', '/leads/' || h.lead_id || '/',
       h.lead_id, h.created_at, CASE WHEN h.status = 'pending' THEN NULL ELSE h.accepted_at END,
       h.created_at, false
FROM leads_handoff h WHERE h.owner_id = ANY(%s)
"""
