"""Revaluations: a change of a rule's points that writes one entry a lead, not two a match.

When only the points of a rule changed, and its award for a match does not depend on
the matches before it (a fit rule's one award a lead, or an engagement rule with no
cap, bonus or window: ``revaluable``), the rule's awards stay what they were but each
is now worth the new points. So instead of a reversal and a new award for every match,
the rescore appends one *revaluation* entry for each lead holding awards of the rule
(``ScoreEntry.revalued_to``: the new points a match):

- its points are the difference the change makes, at the time it is written: for each
  award, (new points - the award's points), an engagement award's decayed from its
  time to then (a fit award never decays), so that from then on it is worth exactly
  the difference at every moment (the decay is exponential); the ledger still sums to
  the score at every moment, and the score history across the change needs nothing
  new;
- from then on each of the lead's older awards of the rule *counts* the new points: its
  effective points are ``revalued_to`` of the lead's latest revaluation of the rule
  written after it (``effective``). Whatever compares awards with what the rules give,
  reverses an award, explains a score or sums its active entries reads the effective
  points and leaves the revaluations themselves out. A reversal of a revalued award is
  worth its effective points, so award, revaluation share and reversal cancel out.

A revaluation is not an award: the rule-match triggers count it as none (migration
``scoring.0031``), and while its rule exists it is never reversed. Once the rule is
deleted (its entries keep no rule) it is an entry like its awards, which no rule gives
any more: the rescore the deletion queues reverses both, each at its own points.
``scoring_verify`` recomputes the awards from the activities and compares them with the
effective points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.models import Case, F, FloatField, OuterRef, Subquery, When
from django.db.models.functions import Coalesce

from .models import EntryKind, ScoreEntry
from .rules import ENGAGEMENT, FIT, RuleSpec, is_capped

Key = tuple[int, int, int]  # lead, model, rule

# The columns of an award its readers compare, reverse and revalue.
AWARD_FIELDS = (
    "id",
    "lead_id",
    "model_id",
    "rule_id",
    "activity_id",
    "bonus",
    "kind",
    "points",
    "at",
)

# SQL: an active entry of the ledger ``e`` that is an award, or a revaluation whose rule
# was deleted (``effective``).
COUNTED = "(e.revalued_to IS NULL OR e.rule_id IS NULL)"


def revaluable(rule: RuleSpec, points_before: int | None) -> bool:
    """Whether a change of ``rule``'s points from ``points_before`` (None: more than the
    points changed) only revalues its awards: a rule that awarded something before and
    still does, whose award is worth its points (no points per unit of a field, no cap
    on them), and is a fit rule (one award a lead, which never decays) or an engagement
    rule whose award for a match depends on that match alone."""
    worth_its_points = rule.per_unit is None and rule.points_cap is None
    if not (points_before and rule.points and worth_its_points):
        return False
    return rule.kind == FIT or (rule.kind == ENGAGEMENT and not is_capped(rule))


def latest_revaluations(entries: Iterable[Mapping[str, Any]]) -> dict[Key, tuple[int, float]]:
    """The latest revaluation (id, points a match) of each (lead, model, rule) among
    ``entries``."""
    latest: dict[Key, tuple[int, float]] = {}
    for entry in entries:
        if entry.get("revalued_to") is None:
            continue
        key = (entry["lead_id"], entry["model_id"], entry["rule_id"])
        if key not in latest or latest[key][0] < entry["id"]:
            latest[key] = (entry["id"], entry["revalued_to"])
    return latest


def effective(
    awards: Iterable[Mapping[str, Any]], latest: dict[Key, tuple[int, float]]
) -> list[dict[str, Any]]:
    """``awards`` (revaluations of existing rules left out) with each one's effective
    points: those of the latest revaluation of its rule written after it, or its own."""
    found = []
    for entry in awards:
        if entry.get("revalued_to") is not None and entry.get("rule_id") is not None:
            continue
        if latest and not entry.get("bonus") and entry.get("rule_id") is not None:
            revaluation = latest.get((entry["lead_id"], entry["model_id"], entry["rule_id"]))
            if revaluation is not None and revaluation[0] > entry["id"]:
                entry = {**entry, "points": revaluation[1]}
        found.append(entry if isinstance(entry, dict) else dict(entry))
    return found


def loaded_effective(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The awards among active ``entries`` (which hold their leads' revaluations) with
    their effective points."""
    return effective(entries, latest_revaluations(entries))


def stored_effective(awards: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``awards`` read without their leads' revaluations, with their effective points:
    the revaluations of their (lead, rule) pairs are read here, through the partial index
    of revaluations."""
    keys = {(a["lead_id"], a["rule_id"]) for a in awards if a.get("rule_id") is not None}
    if not keys:
        return [dict(award) for award in awards]
    revaluations = ScoreEntry.objects.filter(
        lead_id__in={lead for lead, _ in keys},
        rule_id__in={rule for _, rule in keys},
        revalued_to__isnull=False,
    ).values("id", "lead_id", "model_id", "rule_id", "revalued_to")
    return effective(awards, latest_revaluations(revaluations))


def effective_points_sql(entry: str) -> str:
    """SQL for the effective points of the award aliased ``entry``; one parameter, the ids
    of the rules with revaluations among the entries read (``revalued_rules``), so that
    entries of other rules look nothing up."""
    return (
        f"CASE WHEN {entry}.rule_id = ANY(%s::bigint[]) AND NOT {entry}.bonus "
        f"AND {entry}.kind <> '{EntryKind.MANUAL}' THEN COALESCE(("
        "SELECT v.revalued_to FROM scoring_scoreentry v "
        f"WHERE v.lead_id = {entry}.lead_id AND v.rule_id = {entry}.rule_id "
        f"AND v.revalued_to IS NOT NULL AND v.model_id = {entry}.model_id AND v.id > {entry}.id "
        f"ORDER BY v.id DESC LIMIT 1), {entry}.points) ELSE {entry}.points END"
    )


def revalued_rules(cursor: Any, model_id: int, lo: int, hi: int) -> list[int]:
    """The rules with revaluations for leads ``lo..hi`` in the model."""
    cursor.execute(
        "SELECT DISTINCT rule_id FROM scoring_scoreentry WHERE revalued_to IS NOT NULL "
        "AND lead_id BETWEEN %s AND %s AND model_id = %s",
        [lo, hi, model_id],
    )
    return sorted(rule_id for (rule_id,) in cursor.fetchall())


def effective_points(*, model_id: int) -> Case | F:
    """The effective points of an award of ``model_id``, as an expression over a queryset
    of its entries (``effective_points_sql`` for the ORM)."""
    rules = list(
        ScoreEntry.objects.filter(model_id=model_id, revalued_to__isnull=False)
        .order_by()
        .values_list("rule_id", flat=True)
        .distinct()
    )
    if not rules:
        return F("points")
    latest = ScoreEntry.objects.filter(
        lead_id=OuterRef("lead_id"),
        rule_id=OuterRef("rule_id"),
        model_id=OuterRef("model_id"),
        revalued_to__isnull=False,
        id__gt=OuterRef("id"),
    ).order_by("-id")
    return Case(
        When(
            rule_id__in=rules,
            bonus=False,
            then=Coalesce(Subquery(latest.values("revalued_to")[:1]), F("points")),
        ),
        default=F("points"),
        output_field=FloatField(),
    )
