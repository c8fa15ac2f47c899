"""A large benchmark world generated inside PostgreSQL with ``generate_series``.

``seed_demo`` builds a realistic world row by row in Python (about 10,000 activities
a second); a benchmark with 20 million activities needs a faster way. This writes
companies, leads and activities with set-based INSERT … SELECT, deterministically
(``setseed``), with the activity mix of a B2B website: mostly page views (pricing,
features, blog, careers), email opens and clicks, a few webinars, downloads, demo
and quote requests and unsubscribes, spread over the last 180 days.
"""

from __future__ import annotations

from django.db import connection, transaction

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


def generate(*, leads: int, activities_per_lead: int, seed: float = 0.42) -> None:
    """Fill an empty database with ``leads`` leads and ``leads * activities_per_lead``
    activities (already scored: the benchmark's rescore is what scores them)."""
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
        cursor.execute(
            f"""
            INSERT INTO leads_activity (lead_id, type, url, duration_seconds, properties,
                                        occurred_at, received_at, source, idempotency_key,
                                        scored_at, created_by_id)
            SELECT %s + (g - 1) / %s, {_activity_case(0)}, {_activity_case(1)},
                   (random() * 300)::int, '{{}}'::jsonb, at, at, 'bench', '', now(), NULL
            FROM (SELECT g, random() AS r,
                         now() - random() * interval '180 days' AS at
                  FROM generate_series(1, %s) g) s
            """,
            [first_lead, activities_per_lead, leads * activities_per_lead],
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE leads_lead")
        cursor.execute("VACUUM ANALYZE leads_activity")
        cursor.execute("VACUUM ANALYZE leads_company")


def counts() -> tuple[int, int]:
    return Lead.objects.count(), Activity.objects.count()
