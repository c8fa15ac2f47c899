"""Account scores kept up to date, set-based: each company's ``AccountScore`` per model
summed from its leads' ``LeadScore`` rows with ``scoring.account_formula``'s formula.

- ``accounts_refresh`` recomputes the companies of leads whose scores were just written:
  real-time scoring and every rescore call it in their own transaction, after the
  leads' scores (``scoring.lead_scoring.leads_score``, ``scoring.bulk.rescore_range``).
- ``accounts_refresh_all`` recomputes every company, one range of company ids per
  transaction: beat's nightly run (after the decay) and ``manage.py accounts_score``.

Each refresh is four statements over the companies it covers, on PostgreSQL and SQLite
alike: create the rows missing, lock them (PostgreSQL), rewrite them from the leads'
scores, and delete those whose company has no lead scored in the model any more. The
lock comes before the read, so of two transactions scoring people of one company the
later sums what the earlier committed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from leads.models import Company

from .decay import decay_factor_sql, decay_params
from .lead_sets import chunks
from .models import AccountScore

# Companies per statement when they are named one by one.
COMPANIES_PER_STATEMENT = 500


def _at_most(value: str, cap: str, *, postgres: bool) -> str:
    """``value``, or ``cap`` where that is lower; a NULL cap is no cap."""
    if postgres:
        return f"LEAST({value}, {cap})"
    return f"min({value}, COALESCE({cap}, 9e18))"


def _members(where: str, *, postgres: bool) -> str:
    """Each lead of the companies ``where`` selects (over ``l.company_id``) scored in an
    active model: its company, model, fit as it counts and engagement at now."""
    fit = _at_most("(ls.fit + ls.adjustment)", "m.fit_cap", postgres=postgres)
    factor = decay_factor_sql("ls.engagement_at", "m.decay_half_life_days", postgres=postgres)
    return f"""
        SELECT l.company_id, ls.model_id, {fit} AS fit, ls.engagement * {factor} AS eng,
               m.engaged_from
        FROM scoring_leadscore ls
        JOIN leads_lead l ON l.id = ls.lead_id
        JOIN scoring_scoringmodel m ON m.id = ls.model_id
        WHERE m.status = 'active' AND {where}
    """


def _states(where: str, *, postgres: bool) -> str:
    """Each (company, model) of the companies ``where`` selects, with its account state
    (``scoring.account_formula.account_state``)."""
    engagement = _at_most("a.engagement", "m.engagement_cap", postgres=postgres)
    raw = f"floor(m.base_score + a.best_fit + {engagement} + 0.5)"
    score = _at_most(raw, "m.max_points", postgres=postgres)
    return f"""
        SELECT s.*, CASE WHEN s.score >= s.hot_from THEN 'hot'
                         WHEN s.score >= s.warm_from THEN 'warm' ELSE 'cold' END AS band
        FROM (
            SELECT a.company_id, a.model_id, a.best_fit, a.engagement, a.engaged,
                   {score} AS score, m.hot_from, m.warm_from
            FROM (
                SELECT company_id, model_id, max(fit) AS best_fit, sum(eng) AS engagement,
                       sum(CASE WHEN eng >= engaged_from THEN 1 ELSE 0 END) AS engaged
                FROM ({_members(where, postgres=postgres)}) AS members
                GROUP BY company_id, model_id
            ) AS a
            JOIN scoring_scoringmodel m ON m.id = a.model_id
        ) AS s
    """


def _refresh(cursor: Any, where: str, params: dict[str, Any], *, postgres: bool) -> int:
    """The four statements over the companies ``where`` selects (over ``{col}``);
    how many account rows were written."""
    leads = where.format(col="l.company_id")
    accounts = where.format(col="scoring_accountscore.company_id")
    cursor.execute(
        f"""
        INSERT INTO scoring_accountscore
            (company_id, model_id, best_fit, engagement, engagement_at, engaged_contacts,
             score, band, updated_at)
        SELECT DISTINCT l.company_id, ls.model_id, 0, 0, %(now)s, 0, 0, 'cold', %(now)s
        FROM scoring_leadscore ls
        JOIN leads_lead l ON l.id = ls.lead_id
        JOIN scoring_scoringmodel m ON m.id = ls.model_id
        WHERE m.status = 'active' AND {leads}
        ORDER BY 1, 2
        ON CONFLICT (company_id, model_id) DO NOTHING
        """,
        params,
    )
    if postgres:
        # Another transaction summing one of these companies waits here until it
        # commits; the rewrite below then reads what it wrote.
        cursor.execute(
            f"SELECT id FROM scoring_accountscore WHERE {accounts} "
            "ORDER BY company_id, model_id FOR NO KEY UPDATE",
            params,
        )
    cursor.execute(
        f"""
        UPDATE scoring_accountscore SET
            best_fit = sub.best_fit, engagement = sub.engagement, engagement_at = %(now)s,
            engaged_contacts = sub.engaged, score = sub.score, band = sub.band,
            updated_at = %(now)s
        FROM ({_states(leads, postgres=postgres)}) AS sub
        WHERE scoring_accountscore.company_id = sub.company_id
          AND scoring_accountscore.model_id = sub.model_id
        """,
        params,
    )
    written = cursor.rowcount
    cursor.execute(
        f"""
        DELETE FROM scoring_accountscore WHERE {accounts} AND NOT EXISTS (
            SELECT 1 FROM scoring_leadscore ls
            JOIN leads_lead l ON l.id = ls.lead_id
            JOIN scoring_scoringmodel m ON m.id = ls.model_id
            WHERE l.company_id = scoring_accountscore.company_id
              AND ls.model_id = scoring_accountscore.model_id AND m.status = 'active')
        """,
        params,
    )
    return written


def _params(now: datetime, *, postgres: bool) -> dict[str, Any]:
    return decay_params(now, postgres=postgres, lo=0, hi=0)


def accounts_refresh(*, company_ids: Iterable[int | None], now: datetime | None = None) -> int:
    """Recompute the account scores of these companies (None, a lead without one, is
    skipped); how many rows were written. Call it inside the transaction that wrote
    their leads' scores, or on its own."""
    ids = sorted({pk for pk in company_ids if pk is not None})
    if not ids:
        return 0
    now = now or timezone.now()
    postgres = connection.vendor == "postgresql"
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for chunk in chunks(ids, COMPANIES_PER_STATEMENT):
            params = _params(now, postgres=postgres)
            names = []
            for i, pk in enumerate(chunk):
                params[f"c{i}"] = pk
                names.append(f"%(c{i})s")
            where = "{col} IN (" + ", ".join(names) + ")"
            written += _refresh(cursor, where, params, postgres=postgres)
    return written


def company_id_ranges(size: int) -> list[tuple[int, int]]:
    """Consecutive ranges of ``size`` company ids that together cover every company, and
    every account row left over from a company deleted meanwhile."""
    bounds = Company.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    rows = AccountScore.objects.aggregate(lo=Min("company_id"), hi=Max("company_id"))
    los = [v for v in (bounds["lo"], rows["lo"]) if v is not None]
    his = [v for v in (bounds["hi"], rows["hi"]) if v is not None]
    if not los:
        return []
    return [(lo, lo + size - 1) for lo in range(min(los), max(his) + 1, size)]


def accounts_refresh_all(*, now: datetime | None = None) -> int:
    """Recompute every company's account scores at ``now``, one range of
    ``SCORING_ACCOUNT_RANGE`` company ids per transaction; rows of models no longer
    active, and of companies that no longer exist, are removed. How many rows were
    written."""
    now = now or timezone.now()
    postgres = connection.vendor == "postgresql"
    written = 0
    for lo, hi in company_id_ranges(settings.SCORING_ACCOUNT_RANGE):
        params = {**_params(now, postgres=postgres), "lo": lo, "hi": hi}
        with transaction.atomic(), connection.cursor() as cursor:
            written += _refresh(
                cursor, "{col} BETWEEN %(lo)s AND %(hi)s", params, postgres=postgres
            )
    return written
