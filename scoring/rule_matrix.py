"""Which rules match each closed lead of a model: the matrix the suggested weights are
fitted on (``scoring.suggestions``).

A fit rule's column holds 1 where its condition holds on the lead, else 0; an
engagement rule's column holds how many of the lead's activities the rule counts
today, under its caps and recency window (its bonus aside): the number of times its
points are awarded. Nothing is read from the ledger, so a draft's rules, which have
no entries yet, are measured on the same leads as the live ones.

On PostgreSQL the matrix is read set-based, a few statements per 20,000 closed leads:
one scan of the leads tests every fit rule (``scoring.sql.fit_rule_condition``) and one scan
of their activities counts every engagement rule's awards with the rescore's own
statement (``scoring.bulk_awards``). Elsewhere (the embedded SQLite) the leads are read
in chunks and tested by the pure rule functions, as the engine scores them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet

from leads.models import Activity, DealOutcome, Lead

from .bulk_awards import engagement_awards_sql
from .facts import activity_facts, activity_rows, lead_facts, lead_products
from .lead_sets import CHUNK_SIZE, chunks
from .rules import (
    ENGAGEMENT,
    FIT,
    RuleSpec,
    capped_awards,
    fit_matches,
    fit_points,
    in_order,
    rule_matches,
    window_matches,
)
from .ruleset import Ruleset
from .sql import fit_points_sql, fit_rule_condition

SQL_CHUNK_SIZE = 20_000


@dataclass(frozen=True)
class RuleMatrix:
    """One row per closed lead (``won`` tells its outcome), one column per rule."""

    lead_ids: np.ndarray
    won: np.ndarray
    rules: list[RuleSpec]
    values: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        """Which rules match each lead at all (bool, same shape as ``values``)."""
        return self.values > 0


def closed_outcomes(leads: QuerySet[Lead]) -> tuple[np.ndarray, np.ndarray]:
    """The ids of the won and lost leads among ``leads``, in id order, and which won."""
    rows = (
        leads.filter(deal_outcome__gte=DealOutcome.LOST)
        .order_by("pk")
        .values_list("pk", "deal_outcome")
        .distinct()
    )
    pairs = np.array(list(rows), dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1] == DealOutcome.WON


def rule_matrix(
    *, lead_ids: np.ndarray, won: np.ndarray, ruleset: Ruleset, now: datetime
) -> RuleMatrix:
    """The matrix of the rules of ``ruleset``'s one model (fit rules first) over the
    closed leads ``lead_ids`` (``closed_outcomes``)."""
    [model] = ruleset.models
    rules = [*model.fit_rules, *model.engagement_rules]
    values = np.zeros((len(lead_ids), len(rules)), dtype=np.float64)
    if len(lead_ids) and rules:
        fill = _fill_sql if connection.vendor == "postgresql" else _fill_python
        fill(values, lead_ids, rules, ruleset, now)
    return RuleMatrix(lead_ids=lead_ids, won=won, rules=rules, values=values)


def _fill_sql(
    values: np.ndarray, lead_ids: np.ndarray, rules: list[RuleSpec], ruleset: Ruleset, now: datetime
) -> None:
    row_of = {int(lead_id): row for row, lead_id in enumerate(lead_ids)}
    column = {rule.id: col for col, rule in enumerate(rules)}
    fit = [rule for rule in rules if rule.kind == FIT]
    engagement = [rule for rule in rules if rule.kind == ENGAGEMENT]
    with transaction.atomic(), connection.cursor() as cursor:
        # The rescore's memory for sorts and hashes, so the counts do not spill to disk,
        # and no JIT compilation, which costs more than it saves on these statements.
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.SCORING_WORK_MEM])
        cursor.execute("SELECT set_config('jit', 'off', true)")
        for chunk in chunks([int(i) for i in lead_ids], SQL_CHUNK_SIZE):
            if fit:
                cursor.execute(*_fit_tests_sql(fit, chunk))
                cols = [column[rule.id] for rule in fit]
                for lead_id, units in cursor.fetchall():
                    values[row_of[lead_id], cols] = units
            if engagement:
                awards, params = engagement_awards_sql(
                    engagement, ("TRUE", []), chunk[0], chunk[-1], now, leads=chunk
                )
                cursor.execute(
                    f"SELECT lead_id, rule_id, count(*) FROM ({awards}) awards "
                    "WHERE NOT bonus GROUP BY lead_id, rule_id",
                    params,
                )
                for lead_id, rule_id, count in cursor.fetchall():
                    values[row_of[lead_id], column[rule_id]] = count


def _fit_tests_sql(rules: list[RuleSpec], lead_ids: list[int]) -> tuple[str, list[Any]]:
    """One row per lead of ``lead_ids``: its id and each fit rule's units on it
    (``fit_units``)."""
    tests, params = [], []
    for rule in rules:
        test, test_params = fit_rule_condition(rule)
        points, points_params = fit_points_sql(rule)
        tests.append(f"CASE WHEN {test} THEN ({points}) / %s::float8 ELSE 0 END")
        params += [*test_params, *points_params, float(rule.points)]
    sql = (
        f"SELECT l.id, ARRAY[{', '.join(tests)}] FROM leads_lead l "
        "LEFT JOIN leads_company c ON c.id = l.company_id WHERE l.id = ANY(%s)"
    )
    return sql, [*params, lead_ids]


def fit_units(
    rule: RuleSpec, facts: dict[str, Any], domain_lists: dict[str, frozenset[str]]
) -> float:
    """A fit rule's column: 1 or 0 whether it holds, or for a rule with points per unit
    the units it counts (its points as given, over its points), so that the fitted
    weight is a weight per unit."""
    if not fit_matches(rule, facts, domain_lists):
        return 0.0
    return fit_points(rule, facts) / rule.points


def _fill_python(
    values: np.ndarray, lead_ids: np.ndarray, rules: list[RuleSpec], ruleset: Ruleset, now: datetime
) -> None:
    row_of = {int(lead_id): row for row, lead_id in enumerate(lead_ids)}
    types = sorted({rule.activity_type for rule in rules if rule.kind == ENGAGEMENT})
    for chunk in chunks([int(i) for i in lead_ids], CHUNK_SIZE):
        products = lead_products(chunk)
        activities: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        if types:
            queryset = Activity.objects.filter(lead_id__in=chunk, type__in=types)
            for activity in activity_rows(queryset, ruleset):
                activities[activity[0]].append(activity[1:])
        for lead in Lead.objects.filter(pk__in=chunk).select_related("company"):
            row = values[row_of[lead.pk]]
            facts = lead_facts(lead, products.get(lead.pk, []))
            ordered = in_order(activity_facts(activities.get(lead.pk, [])))
            for col, rule in enumerate(rules):
                if rule.kind == FIT:
                    row[col] = fit_units(rule, facts, ruleset.domain_lists)
                    continue
                of_type = [a for a in ordered if a.type == rule.activity_type]
                matched = rule_matches(rule, of_type, now)
                if rule.window_days:
                    matched = window_matches(rule, matched)
                awards = capped_awards(rule, matched)
                row[col] = sum(not award.bonus for award in awards)
