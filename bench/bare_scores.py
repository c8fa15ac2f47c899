"""The database's limit for a rescore: every lead's score in one parallel-capable SELECT.

The "bare SQL" of ``bench/scoring.py``. It computes the scores the product computes
(the fit rules; the engagement rules with their recency window, per-day and per-lead
caps and bonus; exponential decay with the model's half-life) in ONE SELECT and writes
them with ``CREATE TABLE … AS`` (logged, like the product's tables, and parallel-capable,
where ``INSERT … SELECT`` never is on PostgreSQL 15) into a narrow table (lead id,
score, fit, engagement), then adds its primary key, the table's only index. It keeps no
ledger, no explanation and no lead row. Decay is ``float8`` (``date_part('epoch', …)``
and ``power(0.5::float8, …)``), never ``numeric``.

Two ways to write it (``STYLE``), measured against each other at 200,000 leads on
the benchmark machine (9.0 and 11.5 s against 11.6 and 13.4 s): "windows" (the default,
the faster there) and "per-lead"; ``plan`` shows which Gather runs it and with how many
workers. The fit rules' and activities' tests come from the product (``scoring.sql``:
the same condition gives the same answer), a domain list inlined as an array because a
SubPlan keeps a plan out of the workers; the caps, bonus, decay and sums are written
here, and ``agreement`` holds the result to the product's stored scores.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

TABLE = "bench_bare_scores"
NO_CAP = 2**31 - 1
FUNCTION = "bench_bare_lead_score"
# "windows": one SELECT over every activity (parallel scan, join and sort; the windows
# and the sum by lead in the leader, PostgreSQL 15 runs no window function in a worker).
# "per-lead": a parallel scan of the leads, each worker scoring whole leads through a
# PARALLEL SAFE SQL function over the lead's activities (``function_sql``).
STYLE = "windows"
# Session settings of the bare statement, set with SET LOCAL and printed with the
# figures. JIT compiling costs seconds on a statement this size and saves nothing; the
# planner counts a lateral function's cost once, not once a lead, so it would not pay
# for the workers it needs: parallelism is made free, and the table's size decides the
# workers as usual (up to max_parallel_workers_per_gather).
SESSION = {"jit": "off", "parallel_setup_cost": "0", "parallel_tuple_cost": "0"}


def bare_select(
    model: Any, now: datetime, lead_filter: tuple[str, list[Any]] = ("TRUE", [])
) -> tuple[str, list[Any]]:
    """The SELECT of (lead_id, score, fit, engagement) for the compiled ``model`` at
    ``now``, over the leads ``lead_filter`` (SQL on ``l`` and ``c``) lets through, in
    the ``STYLE`` of the module docstring (``per-lead`` calls ``FUNCTION``, which
    ``create_function`` makes)."""
    from scoring.sql import fit_points_sql, fit_rule_condition

    if any(rule.window_days for rule in model.engagement_rules):
        raise SystemExit("The bare statement has no window rules; the model has one.")
    if getattr(model, "idle_week_penalty", 0):
        raise SystemExit("The bare statement has no idle-week penalty; the model has one.")
    fit_terms, fit_params = [], []
    for rule in model.fit_rules:
        condition, condition_params = fit_rule_condition(rule)
        if rule.operator == "in_domain_list" and not rule.conditions:
            condition, condition_params = _domains_inline(condition, condition_params)
        points, points_params = fit_points_sql(rule)
        fit_terms.append(f"CASE WHEN {condition} THEN {points} ELSE 0::float8 END")
        fit_params += [*condition_params, *points_params]
    fit = " + ".join(fit_terms) or "0::float8"
    filter_sql, filter_params = lead_filter
    if STYLE == "per-lead":
        sql = f"""
            SELECT l.id AS lead_id, r.score, r.fit, r.engagement
            FROM leads_lead l LEFT JOIN leads_company c ON c.id = l.company_id
            CROSS JOIN LATERAL {FUNCTION}(l.id, ({fit})::float8) r
            WHERE {filter_sql}
        """
        return sql, [*fit_params, *filter_params]
    only, only_params = "", []
    if filter_sql != "TRUE":
        only = (
            " AND a.lead_id IN (SELECT l.id FROM leads_lead l LEFT JOIN leads_company c"
            f" ON c.id = l.company_id WHERE {filter_sql})"
        )
        only_params = filter_params
    engagement, engagement_params = engagement_sql(model, now, per_lead=False, only=only)
    sql = f"""
        SELECT l.id AS lead_id,
               LEAST(floor(f.fit + COALESCE(e.engagement, 0) + 0.5), %s)::int AS score,
               f.fit, COALESCE(e.engagement, 0::float8) AS engagement
        FROM leads_lead l LEFT JOIN leads_company c ON c.id = l.company_id
        CROSS JOIN LATERAL (SELECT ({fit})::float8 AS fit) f
        LEFT JOIN ({engagement}) e ON e.lead_id = l.id
        WHERE {filter_sql}
    """
    params = [_cap(model), *fit_params, *engagement_params, *only_params, *filter_params]
    return sql, params


def _cap(model: Any) -> float:
    max_points = model.thresholds.max_points
    return float(max_points if max_points is not None else NO_CAP)


def engagement_sql(
    model: Any, now: datetime, *, per_lead: bool, only: str = ""
) -> tuple[str, list[Any]]:
    """The engagement at ``now``: the engagement rules (type, test, recency) over the
    activities, the per-day cap and bonus numbered by one window per (lead, rule, UTC
    day), the per-lead cap by one per (lead, rule), each award decayed from its time in
    ``float8``. With ``per_lead``, one value for the activities of ``lead`` (the
    function's argument); else (lead_id, engagement) of every lead with an award, the
    activities narrowed by ``only`` (SQL on ``a``, its parameters the caller's, last)."""
    from scoring.sql import activity_test

    half_life = model.half_life_days
    weight = "power(0.5::float8, (%s::float8 - t) / %s::float8)" if half_life else "1::float8"
    weight_params = [now.timestamp(), half_life * 86400.0] if half_life else []
    rows, rule_params = [], []
    for rule in model.engagement_rules:
        rows.append("(%s::bigint, %s::varchar, %s::int, %s::int, %s::int, %s::float8, %s::float8)")
        rule_params += [
            rule.id,
            rule.activity_type,
            rule.max_per_day or NO_CAP,
            rule.max_per_lead or NO_CAP,
            rule.bonus_count if rule.bonus_count and rule.bonus_points else 0,
            float(rule.points),
            float(rule.bonus_points),
        ]
    if not rows:
        return (
            "SELECT 0::float8"
            if per_lead
            else "SELECT NULL::bigint AS lead_id, 0::float8 AS engagement WHERE FALSE"
        ), []
    tests, test_params = [], []
    for rule in model.engagement_rules:
        test, params = activity_test(rule)
        if rule.recency_days:
            test = f"({test}) AND a.occurred_at >= %s"
            params = [*params, now - timedelta(days=rule.recency_days)]
        tests.append(f"WHEN %s THEN ({test})")
        test_params += [rule.id, *params]
    lead = "" if per_lead else "a.lead_id, "
    by_lead = "" if per_lead else "d.lead_id, "
    where = "a.lead_id = lead AND " if per_lead else ""
    sql = f"""
        SELECT {"" if per_lead else "lead_id, "}COALESCE(sum(
                   ((CASE WHEN n_day <= day_cap AND n_lead <= lead_cap
                          THEN points ELSE 0::float8 END)
                    + (CASE WHEN n_day = bonus_count THEN bonus_points ELSE 0::float8 END))
                   * {weight}), 0::float8) AS engagement
        FROM (
            SELECT d.*, count(*) FILTER (WHERE d.n_day <= d.day_cap) OVER (
                       PARTITION BY {by_lead}d.rule_id ORDER BY d.day, d.t, d.id
                       ROWS UNBOUNDED PRECEDING) AS n_lead
            FROM (
                SELECT {lead}a.id, r.*, date_part('epoch', a.occurred_at) AS t,
                       floor(date_part('epoch', a.occurred_at) / 86400::float8) AS day,
                       row_number() OVER (
                           PARTITION BY {lead}r.rule_id,
                               floor(date_part('epoch', a.occurred_at) / 86400::float8)
                           ORDER BY a.occurred_at, a.id) AS n_day
                FROM leads_activity a
                JOIN (VALUES {", ".join(rows)})
                     AS r(rule_id, type, day_cap, lead_cap, bonus_count, points,
                          bonus_points) ON r.type = a.type
                WHERE {where}a.occurred_at <= %s
                  AND (CASE r.rule_id {" ".join(tests)} ELSE FALSE END){only}
            ) d
        ) m
        {"" if per_lead else "GROUP BY lead_id"}
    """
    return sql, [*weight_params, *rule_params, now, *test_params]


def function_sql(model: Any, now: datetime) -> tuple[str, list[Any]]:
    """``CREATE OR REPLACE FUNCTION`` of one lead's score, fit and engagement at ``now``
    (``engagement_sql`` for the lead). Its parameters are to be inlined
    (``cursor.mogrify``): a function body takes no placeholders."""
    engagement, params = engagement_sql(model, now, per_lead=True)
    sql = f"""
        CREATE OR REPLACE FUNCTION {FUNCTION}(
            lead bigint, lead_fit float8, OUT score int, OUT fit float8, OUT engagement float8)
        LANGUAGE sql STABLE PARALLEL SAFE COST 10000 AS $body$
            SELECT LEAST(floor(lead_fit + e.engagement + 0.5), %s)::int, lead_fit, e.engagement
            FROM ({engagement}) e(engagement)
        $body$
    """
    return sql, [_cap(model), *params]


DOMAIN_LIST_SUBQUERY = " IN (SELECT domain FROM scoring_domainlist WHERE kind = %s)"


def _domains_inline(condition: str, params: list[Any]) -> tuple[str, list[Any]]:
    """A domain-list test with the list's domains as an array constant instead of the
    product's subquery: PostgreSQL 15 runs no plan with a SubPlan in parallel."""
    from scoring.models import DomainList

    if DOMAIN_LIST_SUBQUERY not in condition:
        raise SystemExit("scoring.sql's domain-list test changed: update bench/bare_scores.py")
    kind = params[-1]
    domains = list(DomainList.objects.filter(kind=kind).values_list("domain", flat=True))
    return condition.replace(DOMAIN_LIST_SUBQUERY, " = ANY(%s::text[])"), [*params[:-1], domains]


def compiled_model(model: Any) -> Any:
    from scoring.ruleset import load_ruleset

    return next(m for m in load_ruleset(fresh=True).models if m.id == model.id)


def create_function(model: Any, now: datetime) -> None:
    """(Re)create ``FUNCTION`` for the compiled ``model`` at ``now``, committed."""
    from django.db import connection

    sql, params = function_sql(model, now)
    with connection.cursor() as cursor:
        cursor.execute(cursor.mogrify(sql, params).decode())


def drop_function() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}")


def _set_session(cursor) -> None:
    for name, value in SESSION.items():
        cursor.execute(f"SET LOCAL {name} = '{value}'")


def plan(model: Any, lead_filter=("TRUE", [])) -> dict[str, Any]:
    """EXPLAIN of the bare CREATE TABLE … AS: its top nodes, whether a Gather runs it in
    parallel and with how many workers planned."""
    from django.db import connection, transaction
    from django.utils import timezone

    compiled, now = compiled_model(model), timezone.now()
    if STYLE == "per-lead":
        create_function(compiled, now)
    sql, params = bare_select(compiled, now, lead_filter)
    with transaction.atomic(), connection.cursor() as cursor:
        _set_session(cursor)
        cursor.execute(f"EXPLAIN (FORMAT JSON) CREATE TABLE {TABLE}_plan AS {sql}", params)
        tree = cursor.fetchone()[0]
        cursor.execute(f"EXPLAIN CREATE TABLE {TABLE}_plan AS {sql}", params)
        text = [row[0] for row in cursor.fetchall()]
        cursor.execute("SHOW max_parallel_workers_per_gather")
        per_gather = int(cursor.fetchone()[0])
        transaction.set_rollback(True)
    if isinstance(tree, str):
        tree = json.loads(tree)
    gathers = []

    def walk(node: dict[str, Any]) -> None:
        if node["Node Type"] in ("Gather", "Gather Merge"):
            gathers.append((node["Node Type"], node.get("Workers Planned", 0)))
        for child in node.get("Plans", []):
            walk(child)

    walk(tree[0]["Plan"])
    return {
        "parallel": bool(gathers),
        "gather": gathers[0][0] if gathers else None,
        "workers": gathers[0][1] if gathers else 0,
        "max_parallel_workers_per_gather": per_gather,
        "text": text,
    }


def run(model: Any, lead_filter=("TRUE", []), *, now: datetime | None = None) -> dict[str, Any]:
    """Compute and write the scores: (re)create ``TABLE`` with ``CREATE TABLE … AS`` and
    add its primary key. The seconds of each step, the rows written and the ``now``."""
    from django.db import connection, transaction
    from django.utils import timezone

    compiled = compiled_model(model)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
    now = now or timezone.now()
    sql, params = bare_select(compiled, now, lead_filter)
    start = time.perf_counter()
    if STYLE == "per-lead":
        create_function(compiled, now)
    with transaction.atomic(), connection.cursor() as cursor:
        _set_session(cursor)
        cursor.execute(f"CREATE TABLE {TABLE} AS {sql}", params)
        rows = cursor.rowcount
        selected = time.perf_counter()
        cursor.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (lead_id)")
    end = time.perf_counter()  # after the commit
    return {
        "seconds": end - start,
        "select": selected - start,
        "key": end - selected,
        "rows": rows,
        "now": now,
        "half_life": compiled.half_life_days,
    }


def agreement(model: Any, result: dict[str, Any]) -> dict[str, Any]:
    """The bare table beside the product's stored scores, both carried to the bare
    statement's ``now``: how many leads have the same score (and within one point), the
    same fit and the same engagement (to 1e-6 relative)."""
    from django.db import connection

    now, half_life = result["now"], result["half_life"]
    decay = (
        "power(0.5::float8, date_part('epoch', %s::timestamptz - ls.engagement_at) / %s::float8)"
        if half_life
        else "1::float8"
    )
    decay_params = [now, half_life * 86400.0] if half_life else []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT count(*),
                   count(*) FILTER (WHERE b.score = p.score),
                   count(*) FILTER (WHERE abs(b.score - p.score) <= 1),
                   count(*) FILTER (WHERE abs(b.fit - p.fit) < 1e-9),
                   count(*) FILTER (WHERE abs(b.engagement - p.engagement)
                                          <= 1e-6 * greatest(1, abs(b.engagement)))
            FROM {TABLE} b
            LEFT JOIN LATERAL (
                SELECT COALESCE(max(x.fit), 0) AS fit,
                       COALESCE(max(x.engagement), 0) AS engagement,
                       COALESCE(max(floor(x.fit + x.engagement + 0.5)), 0) AS score
                FROM (SELECT ls.fit + ls.adjustment AS fit, ls.engagement * {decay} AS engagement
                      FROM scoring_leadscore ls
                      WHERE ls.lead_id = b.lead_id AND ls.model_id = %s) x
            ) p ON true
            """,
            [*decay_params, model.id],
        )
        total, same, within_one, fit, engagement = cursor.fetchone()
    share = (lambda n: 100 * n / total) if total else (lambda n: 100.0)
    return {
        "leads": total,
        "same_score": share(same),
        "within_one": share(within_one),
        "same_fit": share(fit),
        "same_engagement": share(engagement),
    }


def rule_spec(model: Any, rule_id: int) -> Any:
    """The compiled ``RuleSpec`` of one of ``model``'s rules, as stored now."""
    compiled = compiled_model(model)
    return next(r for r in [*compiled.fit_rules, *compiled.engagement_rules] if r.id == rule_id)
