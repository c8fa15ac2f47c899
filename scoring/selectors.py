"""Read-only views of scores for the rep's lists: the reasons behind each lead's score and
the leads surging now (My day)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import (
    Count,
    F,
    FilteredRelation,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)

from leads.custom_fields import CustomFieldDefinition
from leads.exports import ExportColumn
from leads.models import Lead

from .models import EntryKind, LeadScore, ScoreEntry, ScoringModel
from .revaluations import effective_points, loaded_effective
from .rule_fields import CUSTOM_PREFIX, FIT_FIELDS
from .score_formula import decay_factor

if TYPE_CHECKING:
    from crm.models import User

REASONS_PER_LEAD = 2
SURGING_LEADS = 5


def lead_reasons(*, leads: list[Lead], now: datetime) -> dict[int, list[str]]:
    """The rules adding the most points to each lead's primary score now, strongest first:
    the first lines of the lead page's explanation, for all the leads in two queries.

    Reads each lead's active ledger entries (not reversed, not reversals), weighs
    engagement by the model's decay as ``lead_explanation`` does, and keeps the reasons
    of the top positive rules.
    """
    ids = [lead.pk for lead in leads]
    primary = {
        lead_id: (model_id, half_life)
        for lead_id, model_id, half_life in LeadScore.objects.filter(
            lead_id__in=ids, is_primary=True
        ).values_list("lead_id", "model_id", "model__decay_half_life_days")
    }
    if not primary:
        return {}
    entries = ScoreEntry.objects.filter(
        lead_id__in=list(primary),
        model_id__in={model_id for model_id, _ in primary.values()},
        reversal_of__isnull=True,
        reversals__isnull=True,
    ).values(
        "id",
        "lead_id",
        "model_id",
        "rule_id",
        "kind",
        "bonus",
        "points",
        "at",
        "reason",
        "revalued_to",
    )
    lines: dict[int, dict[tuple[Any, str], list[Any]]] = defaultdict(dict)
    # Awards at their effective points, revaluations left out (``scoring.revaluations``).
    for entry in loaded_effective(list(entries)):
        lead_id, kind, points = entry["lead_id"], entry["kind"], entry["points"]
        model, half_life = primary[lead_id]
        if entry["model_id"] != model:
            continue
        if kind == EntryKind.ENGAGEMENT:
            points *= decay_factor((now - entry["at"]).total_seconds(), half_life)
        key = (entry["id"], kind) if kind == EntryKind.MANUAL else (entry["rule_id"], kind)
        line = lines[lead_id].setdefault(key, [0.0, entry["reason"]])
        line[0] += points
    return {
        lead_id: [
            reason
            for value, reason in sorted(by_rule.values(), key=lambda line: -line[0])
            if value >= 0.5
        ][:REASONS_PER_LEAD]
        for lead_id, by_rule in lines.items()
    }


@dataclass(frozen=True)
class Surge:
    lead: Lead
    points: int
    hours: int
    at: datetime


def surging_leads(*, user: User, now: datetime, limit: int = SURGING_LEADS) -> list[Surge]:
    """Open leads the person can see whose score surged within their model's window.

    Scoring marks ``LeadScore.surged_at`` when a lead gains at least the model's surge
    points within its surge hours; the points gained in that window are summed from the
    ledger as scoring does (positive active entries dated inside it). Three queries.
    """
    windows = _surge_windows()
    if not windows:
        return []
    rows = _surged(user, now, windows).select_related("lead__company")[: limit * 2]
    surges: dict[int, LeadScore] = {}
    for row in rows:
        surges.setdefault(row.lead_id, row)
    chosen = list(surges.values())[:limit]
    since = {row.lead_id: now - timedelta(hours=windows[row.model_id]) for row in chosen}
    gained: dict[int, float] = defaultdict(float)
    if chosen:
        entries = ScoreEntry.objects.filter(
            lead_id__in=list(since),
            model_id__in={row.model_id for row in chosen},
            points__gt=0,
            at__gte=min(since.values()),
            reversal_of__isnull=True,
            reversals__isnull=True,
            revalued_to__isnull=True,
        ).values_list("lead_id", "model_id", "points", "at")
        models = {row.lead_id: row.model_id for row in chosen}
        for lead_id, model_id, points, at in entries:
            if model_id == models[lead_id] and at >= since[lead_id]:
                gained[lead_id] += points
    return [
        # Every chosen row has ``surged_at``: the rows are filtered on it.
        Surge(row.lead, round(gained[row.lead_id]), windows[row.model_id], row.surged_at)  # type: ignore[arg-type]
        for row in chosen
    ]


def surging_lead_ids(*, user: User, now: datetime, limit: int = SURGING_LEADS) -> list[int]:
    """The ids of the leads ``surging_leads`` gives, in its order, without the points
    they gained: two queries, no lead read (the work queue needs no more)."""
    windows = _surge_windows()
    if not windows:
        return []
    rows = _surged(user, now, windows).values_list("lead_id", flat=True)[: limit * 2]
    return list(dict.fromkeys(rows))[:limit]


def _surge_windows() -> dict[int, int]:
    """The surge hours of each active model that marks surges."""
    return dict(
        ScoringModel.objects.active().filter(surge_points__gt=0).values_list("pk", "surge_hours")
    )


def _surged(user: User, now: datetime, windows: dict[int, int]) -> QuerySet[LeadScore]:
    """Scores of open leads ``user`` sees that surged within their model's window,
    newest surge first."""
    recent = Q()
    for model_id, hours in windows.items():
        recent |= Q(model_id=model_id, surged_at__gte=now - timedelta(hours=hours))
    return LeadScore.objects.filter(recent, lead__in=Lead.objects.visible_to(user).open()).order_by(
        "-surged_at", "-pk"
    )


@dataclass
class RuleReach:
    """What one rule gives a model's leads: how many leads it matches and the points it
    awards them, as awarded (before decay)."""

    leads: int = 0
    points: float = 0.0


def rule_reach(*, model: ScoringModel) -> dict[int, RuleReach]:
    """Per rule of ``model``: the leads holding an award of it that was never reversed,
    and those awards' points, in one grouped query over the model's ledger."""
    active = ScoreEntry.objects.filter(
        model=model,
        rule__isnull=False,
        reversal_of__isnull=True,
        reversals__isnull=True,
        revalued_to__isnull=True,
    )
    rows = (
        active.order_by()
        .annotate(effective=effective_points(model_id=model.pk))
        .values("rule_id")
        .annotate(leads=Count("lead_id", distinct=True), points=Sum("effective"))
    )
    return {row["rule_id"]: RuleReach(row["leads"], row["points"] or 0.0) for row in rows}


def points_shares(reach: dict[int, RuleReach]) -> dict[int, float]:
    """Each rule's points as a share of all the points the rules award, counted whatever
    their sign (a negative rule has a negative share)."""
    total = sum(abs(found.points) for found in reach.values())
    return {rule_id: found.points / total for rule_id, found in reach.items()} if total else {}


def fit_field_choices() -> list[tuple[str, Any]]:
    """What a fit rule can test, grouped and in words: the lead's fields, its company's,
    and the custom fields defined now."""
    lead: list[tuple[str, str]] = []
    company: list[tuple[str, str]] = []
    for name, spec in FIT_FIELDS.items():
        (company if name.startswith("company.") else lead).append((name, spec.label.capitalize()))
    custom = [
        (f"{CUSTOM_PREFIX}{key}", label)
        for key, label in CustomFieldDefinition.objects.values_list("key", "label")
    ]
    choices: list[tuple[str, Any]] = [("", "— (engagement rules test no field)")]
    choices += [("Lead", lead), ("Company", company)]
    if custom:
        choices.append(("Custom fields", custom))
    return choices


# The alias of the lead's primary score row joined by ``predictive_score_joined``.
PRIMARY_SCORE_ALIAS = "primary_score"


def predictive_score_joined() -> dict[str, FilteredRelation | F]:
    """Annotations (in this order) giving a query of leads its primary predictive score
    by joining the primary score row, ``{..., name: F(...)}`` under the last key: for a
    query sorted by the predictive score. Filtered on ``<name>__isnull=False`` the join
    is inner and the database walks ``leadscore_predictive_idx`` in the sort's order,
    stopping at the page's end, where ``predictive_score_subquery`` reads every lead's
    and sorts them all. A lead has one primary score row (the scoring marks its best
    model's), so the join repeats no lead."""
    return {
        PRIMARY_SCORE_ALIAS: FilteredRelation("scores", condition=Q(scores__is_primary=True)),
        "predictive_score": F(f"{PRIMARY_SCORE_ALIAS}__predictive_score"),
    }


def predictive_score_subquery(lead: str = "pk") -> Subquery:
    """The predictive score of the row's ``lead`` in its primary model (``None``: none
    live), for the one query of a list: one probe of the primary scores' index a row."""
    scores = LeadScore.objects.filter(lead=OuterRef(lead), is_primary=True)
    return Subquery(scores.values("predictive_score")[:1], output_field=IntegerField(null=True))


# The exported files' ``predictive_score`` column (``leads.exports``), after the rule
# score's columns: read with the leads, empty while the lead has no predictive score.
PREDICTIVE_EXPORT_COLUMN = ExportColumn(
    "predictive_score",
    reads=("predictive_score_cell",),
    annotations=(("predictive_score_cell", predictive_score_subquery),),
)
PREDICTIVE_EXPORT_AFTER = "quadrant"


def lead_predictive_score(*, lead: Lead) -> int | None:
    """The lead's predictive score in its primary model; ``None`` while none is live."""
    return (
        LeadScore.objects.filter(lead=lead, is_primary=True)
        .values_list("predictive_score", flat=True)
        .first()
    )
