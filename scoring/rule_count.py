"""How many leads of a model's segment a rule matches now, for a rule being edited (saved
or not): a fit rule's condition holds on the lead, an engagement rule counts at least one
of the lead's activities under its caps, recency and window.

On PostgreSQL one set-based statement counts over the whole segment: a fit rule's
condition (``scoring.sql.fit_rule_condition``) in one COUNT, an engagement rule's awards
with the rescore's own statement (``scoring.bulk_awards.engagement_awards_sql``).
Elsewhere (the embedded SQLite) the pure rule functions test at most ``PYTHON_LIMIT``
leads of the segment (``scoring.rule_matrix``), and the answer says it is bounded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone

from leads.models import Lead

from .bulk_awards import engagement_awards_sql
from .lead_sets import segment_lead_ids, segment_sql
from .models import Rule, ScoringModel
from .rule_matrix import rule_matrix
from .rules import FIT, RuleSpec
from .ruleset import Ruleset, load_ruleset, model_settings
from .sql import fit_rule_condition

PYTHON_LIMIT = 5_000


@dataclass(frozen=True)
class RuleCount:
    """The leads the rule matches, of ``counted`` leads tested (the whole segment unless
    ``bounded``)."""

    leads: int
    counted: int
    bounded: bool = False


def rule_match_count(*, model: ScoringModel, rule: Rule, now: datetime | None = None) -> RuleCount:
    """The leads of ``model``'s segment ``rule`` matches; call with a rule that passed
    ``Rule.validate`` (it need not be saved)."""
    now = now or timezone.now()
    spec = dataclasses.replace(rule.spec(), id=rule.pk or 0)
    if connection.vendor == "postgresql":
        return _count_sql(model, spec, now)
    return _count_python(model, spec, now)


def _segment_sql(model: ScoringModel, lead: str) -> tuple[str, list[Any]]:
    owner = model.version_of if model.is_candidate and model.version_of else model
    ids = [] if owner.is_default else list(owner.segment_product_lines.values_list("pk", flat=True))
    return segment_sql(is_default=owner.is_default, segment_ids=ids, lead=lead)


def _count_sql(model: ScoringModel, spec: RuleSpec, now: datetime) -> RuleCount:
    with connection.cursor() as cursor:
        if spec.kind == FIT:
            segment, segment_params = _segment_sql(model, "l.id")
            condition, params = fit_rule_condition(spec)
            cursor.execute(
                "SELECT count(*) FILTER (WHERE "
                f"{condition}), count(*) FROM leads_lead l "
                f"LEFT JOIN leads_company c ON c.id = l.company_id WHERE {segment}",
                [*params, *segment_params],
            )
            matched, total = cursor.fetchone()
            return RuleCount(leads=matched, counted=total)
        segment, segment_params = _segment_sql(model, "a.lead_id")
        bounds = Lead.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
        total = segment_lead_ids(model).count()
        if bounds["lo"] is None:
            return RuleCount(leads=0, counted=0)
        awards, params = engagement_awards_sql(
            [spec], (segment, segment_params), bounds["lo"], bounds["hi"], now
        )
        cursor.execute(
            f"SELECT count(DISTINCT lead_id) FROM ({awards}) awards WHERE NOT bonus", params
        )
        (matched,) = cursor.fetchone()
        return RuleCount(leads=matched, counted=total)


def _count_python(model: ScoringModel, spec: RuleSpec, now: datetime) -> RuleCount:
    ids = list(segment_lead_ids(model)[: PYTHON_LIMIT + 1])
    bounded = len(ids) > PYTHON_LIMIT
    ids = ids[:PYTHON_LIMIT]
    compiled = model_settings(model)
    (compiled.fit_rules if spec.kind == FIT else compiled.engagement_rules).append(spec)
    ruleset = Ruleset([compiled], load_ruleset([]).domain_lists)
    lead_ids = np.array(ids, dtype=np.int64)
    matrix = rule_matrix(
        lead_ids=lead_ids, won=np.zeros(len(ids), dtype=bool), ruleset=ruleset, now=now
    )
    return RuleCount(leads=int(matrix.matched[:, 0].sum()), counted=len(ids), bounded=bounded)
