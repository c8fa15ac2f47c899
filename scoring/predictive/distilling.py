"""Rule weights from the live predictive model: points for a scoring model's rules that make
the rule score rank leads as the predictive model does, as a draft to preview.

**The fit (distillation).** The predictive model is additive in log-odds when it is a
logistic regression and close to it when boosted, and a rule score is additive in
points; so the points are fitted to the model's log-odds. For the leads scored in the
model (open and closed, a sample of ``SAMPLE`` when there are more), each read as it is
now, as both scores are served, the target is the live model's calibrated log-odds and
the inputs are the rule matrix (``scoring.rule_matrix``: 1/0 for a fit rule, the awards
counted for an engagement rule). A ridge regression on standardized columns (the penalty
chosen by generalized cross-validation) gives each rule the log-odds one match adds with
the other rules held fixed, which become points as suggested weights turn log-odds into
points (``scoring.suggestions.points_per_log_odds``: on average as many points per lead
as the current points give, so the thresholds keep their meaning). Rules matching too
few of the leads read keep their points; rules matching nearly the same leads are told
apart by none of this, so the one weighing most takes the weight and the others get 0,
as in suggested weights.

Only the model's output is fitted, never an outcome, so the newest closed leads the
predictive model did not train on (its holdout) are left out of the fit and judge it:
the ROC AUC there of the proposed points, of the points now, and of the model itself,
all read as the leads are now. How faithfully the rules reproduce the model is measured
on a fifth of the sample left out of the fit: R² of the fitted log-odds, and the rank
correlation (Spearman) of the rule score, with the points now and the proposed ones,
against the model's chance. Caps, decay and the base score are left aside here; the
draft's preview in the studio scores it in full.

Rules cannot express what no rule tests: the strongest features on the model's card
that no switched-on rule reads are named in words as hints for new rules.

A distillation is kept in the shared cache for ``CACHE_SECONDS`` under a key that
changes with the model, its rules, the live predictive model and the scored and closed
leads' counts; ``scoring.predictive.distill_runs`` fits it on the bulk queue.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Max
from django.utils import timezone
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV
from threadpoolctl import threadpool_limits

from crm.models import User
from crm.resilience import cache_call

from ..lead_sets import segment_leads
from ..models import LeadScore, PredictiveModel, Rule, ScoringModel
from ..rule_matrix import closed_outcomes, rule_matrix
from ..rules import ENGAGEMENT
from ..suggestions import (
    DUPLICATE,
    DUPLICATE_JACCARD,
    MIN_RULE_MATCHES,
    TOO_FEW,
    Flag,
    PointsProposal,
    candidate_rules,
    model_draft_with_points,
    points_per_log_odds,
)
from . import training
from .artifacts import artifact_of
from .features import WINDOWS, decision_times
from .services import live_predictive, predictive_probabilities, predictive_readiness

SAMPLE = 20_000
FIDELITY_SHARE = 0.2
MIN_LEADS = 50
ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))
# The model's chances are clipped to this before their log-odds are taken.
CLIP = 0.001
# The strongest features of the card looked at for hints, and the hints given at most.
STRONGEST = 10
MAX_HINTS = 5
CACHE_SECONDS = 600
WHAT = "Rule weights from the predictive model"


@dataclass(frozen=True)
class DistilledRule(PointsProposal):
    """One rule: its points now and proposed, and why in a sentence."""

    rule_id: int
    name: str
    sentence: str  # the rule as a sentence
    kind: str
    active: bool
    current_points: int
    proposed_points: int
    matched: int  # leads read that it matches
    log_odds: float | None  # fitted log-odds per match; None when not fitted
    reason: str
    flags: tuple[Flag, ...] = ()

    @property
    def new_points(self) -> int:
        return self.proposed_points


@dataclass(frozen=True)
class FeatureHint:
    """A feature the predictive model leans on that no switched-on rule tests."""

    feature: str  # the raw input's key
    label: str
    text: str


@dataclass(frozen=True)
class Distillation:
    """Proposed points for a model's rules from its live predictive model, how well the
    rules can follow it, and hints for rules it lacks; or why there is none."""

    model: ScoringModel
    predictive_id: int | None = None
    message: str = ""
    leads: int = 0  # leads the fit read
    rules: list[DistilledRule] = field(default_factory=list)
    hints: list[FeatureHint] = field(default_factory=list)
    points_per_log_odds: float | None = None
    regularization: float | None = None  # the ridge penalty chosen
    checked: int = 0  # leads the fidelity is measured on
    r_squared: float | None = None
    rank_correlation: float | None = None  # proposed points against the model
    live_rank_correlation: float | None = None  # points now against the model
    holdout: int = 0
    holdout_won: int = 0
    model_auc: float | None = None
    live_auc: float | None = None
    proposed_auc: float | None = None

    @property
    def ready(self) -> bool:
        return bool(self.rules)


class DistillationError(Exception):
    """No proposal to turn into a draft; the message says why."""


# --- What it is fitted on -----------------------------------------------------------------


@dataclass(frozen=True)
class DistillationBasis:
    """The live predictive model (None: ``base`` says why not) and the key its
    distillation is kept under."""

    base: Distillation
    key: str | None
    predictive: PredictiveModel | None


def distillation_basis(*, model: ScoringModel) -> DistillationBasis:
    """Whether ``model`` has a live predictive model to distil, and the key (a few small
    queries, no fit)."""
    predictive = live_predictive(model)
    if predictive is None:
        message = (
            "No predictive model is live for this model, so there is nothing to derive rule "
            "weights from: train one on the closed leads; it goes live only when it ranks the "
            "newest outcomes at least as well as the rules."
        )
        return DistillationBasis(Distillation(model=model, message=message), None, None)
    base = Distillation(model=model, predictive_id=predictive.pk)
    return DistillationBasis(base, _cache_key(model, predictive), predictive)


def _cache_key(model: ScoringModel, predictive: PredictiveModel) -> str:
    """Changes with the model, any of its rules, the live predictive model and the
    counts of scored and closed leads; ``CACHE_SECONDS`` bound what it cannot see."""
    rules = model.rules.aggregate(n=Count("pk"), last=Max("pk"), at=Max("updated_at"))
    scored = LeadScore.objects.filter(model=model).aggregate(n=Count("pk"), last=Max("lead_id"))
    readiness = predictive_readiness(model=model)
    parts = (
        model.pk,
        model.updated_at,
        *rules.values(),
        predictive.pk,
        *scored.values(),
        readiness.won,
        readiness.lost,
    )
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
    return f"scoring:distillation:{model.pk}:{digest}"


def kept_distillation(*, key: str) -> Distillation | None:
    """The distillation kept under ``key``, if any (none when the cache is down)."""
    found = cache_call(partial(cache.get, key), default=None, what=WHAT)
    return found if isinstance(found, Distillation) else None


def model_distillation(*, model: ScoringModel, now: datetime | None = None) -> Distillation:
    """Proposed points for every rule of ``model`` from its live predictive model (module
    docstring), kept in the cache. Reads only; takes seconds at 20,000 leads."""
    basis = distillation_basis(model=model)
    if basis.key is None or basis.predictive is None:
        return basis.base
    kept = kept_distillation(key=basis.key)
    if kept is not None:
        return kept
    distillation = _distil(basis.base, basis.predictive, now or timezone.now())
    store = partial(cache.set, basis.key, distillation, CACHE_SECONDS)
    cache_call(store, default=None, what=WHAT)
    return distillation


# --- The leads read -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Leads:
    """The leads read, ids ascending (as the rule matrix reads them), with which are fitted
    on, which measure the fidelity, and which are the holdout (with their outcomes)."""

    ids: np.ndarray
    fit: np.ndarray  # row indexes
    check: np.ndarray
    holdout: np.ndarray
    holdout_won: np.ndarray


def _leads(model: ScoringModel, predictive: PredictiveModel) -> _Leads:
    holdout_ids, holdout_won = _holdout(model, predictive)
    scored = np.array(
        LeadScore.objects.filter(model=model).order_by("lead_id").values_list("lead_id", flat=True),
        dtype=np.int64,
    )
    pool = np.setdiff1d(scored, holdout_ids)
    rng = np.random.default_rng(0)
    if len(pool) > SAMPLE:
        pool = np.sort(rng.choice(pool, SAMPLE, replace=False))
    ids = np.union1d(pool, holdout_ids)
    shuffled = rng.permutation(np.searchsorted(ids, pool))
    n_check = round(len(shuffled) * FIDELITY_SHARE)
    order = np.argsort(holdout_ids)
    return _Leads(
        ids=ids,
        fit=np.sort(shuffled[n_check:]),
        check=np.sort(shuffled[:n_check]),
        holdout=np.searchsorted(ids, holdout_ids[order]),
        holdout_won=holdout_won[order],
    )


def _holdout(model: ScoringModel, predictive: PredictiveModel) -> tuple[np.ndarray, np.ndarray]:
    """The closed leads the predictive model did not train on: in the order training
    reads them (by close time), those after its first ``n_train``. Leads closed since it
    was trained join them."""
    lead_ids, won = closed_outcomes(segment_leads(model))
    if not len(lead_ids):
        return lead_ids, won
    closed = decision_times(lead_ids).closed_at
    order = np.argsort([at.timestamp() for at in closed], kind="stable")
    rest = order[predictive.n_train :]
    return lead_ids[rest], won[rest]


# --- The fit ------------------------------------------------------------------------------


@dataclass
class _Column:
    index: int
    rule: Rule
    matched: int
    typical: float  # mean of its column over the fitted leads it matches
    flags: list[Flag] = field(default_factory=list)
    weight: float | None = None

    @property
    def effect(self) -> float:
        return (self.weight or 0.0) * self.typical


def _distil(base: Distillation, predictive: PredictiveModel, now: datetime) -> Distillation:
    ruleset, rules = candidate_rules(base.model)
    if not rules:
        return replace(base, message="The model has no rule to weigh.")
    leads = _leads(base.model, predictive)
    if len(leads.fit) < MIN_LEADS:
        return replace(
            base,
            message=f"Rule weights from the model need at least {MIN_LEADS} scored leads it "
            f"did not train on; there are {len(leads.fit)}.",
        )
    chances = predictive_probabilities(
        predictive=predictive, lead_ids=[int(i) for i in leads.ids], now=now
    )
    clipped = np.clip(chances, CLIP, 1 - CLIP)
    target = np.log(clipped / (1 - clipped))
    matrix = rule_matrix(
        lead_ids=leads.ids, won=np.zeros(len(leads.ids), dtype=bool), ruleset=ruleset, now=now
    )
    values = matrix.values
    columns = [_column(i, rules[spec.id], values[leads.fit]) for i, spec in enumerate(matrix.rules)]
    judged = [c for c in columns if _judgeable(c, len(leads.fit))]
    for column in columns:
        if column not in judged:
            column.flags.append(Flag(TOO_FEW, _too_few_text(column, len(leads.fit))))
    if not judged:
        return replace(base, message="No rule matches enough of the leads to be weighed.")
    with threadpool_limits(limits=1):
        ridge = _fit(values[leads.fit], target[leads.fit], judged)
        kept = _drop_duplicates(values[leads.fit], judged)
        if len(kept) < len(judged):
            ridge = _fit(values[leads.fit], target[leads.fit], kept)
    means = values[leads.fit].mean(axis=0)
    k = points_per_log_odds(
        means=[float(means[c.index]) for c in judged],
        points=[c.rule.points if c.rule.active else 0 for c in judged],
        weights=[c.weight or 0.0 for c in judged],
    )
    rows = [_row(column, k) for column in columns]
    rows.sort(key=lambda row: (-row.proposed_points, -row.current_points, row.rule_id))
    proposed = np.array([row.proposed_points for row in _in_order(rows, matrix.rules)], float)
    live = np.array([c.rule.points if c.rule.active else 0 for c in columns], float)
    check, hold = leads.check, leads.holdout
    fitted_check = ridge.predict(_standardized(values[check], kept, values[leads.fit]))
    return replace(
        base,
        message=f"Fitted on {len(leads.fit)} scored leads to the model's chances.",
        leads=len(leads.fit),
        rules=rows,
        hints=feature_hints(predictive=predictive, rules=list(rules.values())),
        points_per_log_odds=k,
        regularization=float(ridge.alpha_),
        checked=len(check),
        r_squared=_r_squared(target[check], fitted_check),
        rank_correlation=_rank_correlation(values[check] @ proposed, chances[check]),
        live_rank_correlation=_rank_correlation(values[check] @ live, chances[check]),
        holdout=len(hold),
        holdout_won=int(leads.holdout_won.sum()),
        model_auc=training.auc_of(chances[hold], leads.holdout_won),
        live_auc=training.auc_of(values[hold] @ live, leads.holdout_won),
        proposed_auc=training.auc_of(values[hold] @ proposed, leads.holdout_won),
    )


def _column(index: int, rule: Rule, values: np.ndarray) -> _Column:
    hit = values[:, index] > 0
    matched = int(hit.sum())
    typical = float(values[hit, index].mean()) if matched else 0.0
    return _Column(index, rule, matched, typical)


def _judgeable(column: _Column, n: int) -> bool:
    return min(column.matched, n - column.matched) >= MIN_RULE_MATCHES


def _too_few_text(column: _Column, n: int) -> str:
    if column.matched < MIN_RULE_MATCHES:
        said = f"Matches only {column.matched} of the {n} leads read"
    else:
        said = f"Matches all but {n - column.matched} of the {n} leads read"
    return f"{said}: too few to tell what the model makes of it, so it keeps its points."


def _standardized(values: np.ndarray, columns: list[_Column], basis: np.ndarray) -> np.ndarray:
    cols = [c.index for c in columns]
    mean, scale = basis[:, cols].mean(axis=0), basis[:, cols].std(axis=0)
    return (values[:, cols] - mean) / np.where(scale > 0, scale, 1.0)


def _fit(values: np.ndarray, target: np.ndarray, columns: list[_Column]) -> RidgeCV:
    """Ridge on standardized columns; each column's weight per unit of its own column."""
    ridge = RidgeCV(alphas=ALPHAS).fit(_standardized(values, columns, values), target)
    scale = values[:, [c.index for c in columns]].std(axis=0)
    for column, coefficient, s in zip(columns, ridge.coef_, scale, strict=True):
        column.weight = float(coefficient / s) if s > 0 else 0.0
    return ridge


def _drop_duplicates(values: np.ndarray, columns: list[_Column]) -> list[_Column]:
    """Of rules matching nearly the same leads, the one weighing most is kept; the others
    are flagged and weigh 0."""
    hits = values[:, [c.index for c in columns]] > 0
    both = hits.T.astype(np.int64) @ hits.astype(np.int64)
    sizes = np.diag(both)
    jaccard = both / np.maximum(sizes[:, None] + sizes[None, :] - both, 1)
    order = sorted(range(len(columns)), key=lambda i: -abs(columns[i].effect))
    kept: list[int] = []
    for i in order:
        twin = next((j for j in kept if jaccard[i, j] >= DUPLICATE_JACCARD), None)
        if twin is None:
            kept.append(i)
            continue
        original = columns[twin]
        columns[i].weight = 0.0
        columns[i].flags.append(
            Flag(
                DUPLICATE,
                f"Matches nearly the same leads as “{original.rule.name}” "
                f"({jaccard[i, twin]:.0%} in common): the two cannot be told apart, so its "
                f"weight goes to “{original.rule.name}” and it is proposed 0.",
            )
        )
    return [columns[i] for i in sorted(kept)]


def _row(column: _Column, k: float) -> DistilledRule:
    rule = column.rule
    current = rule.points if rule.active else 0
    if column.weight is None:  # not judged: kept as it is
        proposed = current
        reason = column.flags[0].text if column.flags else "Kept as it is."
    else:
        proposed = round(k * column.weight)
        reason = _reason(column, rule, proposed)
    return DistilledRule(
        rule_id=rule.pk,
        name=rule.name,
        sentence=rule.describe(),
        kind=rule.kind,
        active=rule.active,
        current_points=rule.points,
        proposed_points=proposed,
        matched=column.matched,
        log_odds=column.weight,
        reason=reason,
        flags=tuple(column.flags),
    )


def _reason(column: _Column, rule: Rule, proposed: int) -> str:
    """Why the rule gets ``proposed`` points, in a sentence."""
    if column.flags:  # a duplicate
        return column.flags[0].text
    per = " each time it counts" if rule.kind == ENGAGEMENT else ""
    if rule.kind != ENGAGEMENT and rule.per_unit:
        per = f" for each {rule.per_unit:g} of the field"
    odds = math.exp(column.weight or 0.0)
    said = (
        f"With the other rules held fixed, the model gives the leads it matches {odds:.2f} "
        f"times the odds of converting{per}"
    )
    now = rule.points if rule.active else 0
    if proposed == 0:
        return f"{said}, next to nothing: switched off (it gives {now} points now)."
    if proposed == now:
        return f"{said}: its {now} points already say so."
    if now == 0:
        return f"{said}: {proposed} points, where it gives none now."
    if (proposed > 0) != (now > 0):
        return f"{said}: {proposed} points, the other way from the {now} it gives now."
    more = "more" if abs(proposed) > abs(now) else "fewer"
    return f"{said}: {proposed} points, {more} than the {now} it gives now."


def _in_order(rows: list[DistilledRule], specs: list[Any]) -> list[DistilledRule]:
    by_id = {row.rule_id: row for row in rows}
    return [by_id[spec.id] for spec in specs]


def _r_squared(target: np.ndarray, fitted: np.ndarray) -> float | None:
    total = float(((target - target.mean()) ** 2).sum())
    if not len(target) or total <= 0:
        return None
    return 1 - float(((target - fitted) ** 2).sum()) / total


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)


# --- What no rule tests -------------------------------------------------------------------

# Fit rule fields that read what a predictive feature of another name reads.
FIELD_FEATURES = {
    "company.industry": "industry",
    "company.employee_count": "employee_count",
    "company.annual_revenue": "annual_revenue",
}


def rule_features(rule: Rule, *, decay: bool) -> set[str]:
    """The predictive model's raw inputs (``features.feature_fields``) that ``rule`` reads;
    ``decay``: the model's engagement decays, which reads the time since an activity."""
    if rule.kind != ENGAGEMENT:
        fields = [rule.field, *(c.get("field", "") for c in rule.conditions or [])]
        return {FIELD_FEATURES.get(name, name.removeprefix("custom.")) for name in fields}
    kind = rule.activity_type
    read = {f"n_{kind}", *(f"n_{kind}_{days}d" for days in WINDOWS), "n_activities"}
    if rule.recency_days or decay:
        read.add("days_since_activity")
    if kind == "page_view" and rule.min_duration_seconds:
        read.add("seconds_on_site")
    if kind == "page_view" and rule.pattern:
        read.add(f"url:{rule.pattern.lower()}")
    return read


def _tested(key: str, read: set[str]) -> bool:
    if key.startswith("n_url_"):
        part = key.removeprefix("n_url_")
        return any(r.startswith("url:") and f"/{part}" in r for r in read)
    return key in read


def feature_hints(*, predictive: PredictiveModel, rules: list[Rule]) -> list[FeatureHint]:
    """The strongest features on ``predictive``'s card that no switched-on rule of
    ``rules`` reads, one per raw input, in words."""
    decay = bool(predictive.model.decay_half_life_days)
    read = set().union(*(rule_features(r, decay=decay) for r in rules if r.active))
    labels = {spec.key: spec.label for spec in artifact_of(predictive).encoding.specs}
    hints: list[FeatureHint] = []
    for row in predictive.features[:STRONGEST]:
        group = str(row.get("group", row.get("feature", "")))
        if _tested(group, read) or any(h.feature == group for h in hints):
            continue
        if "weight" not in row and float(row.get("importance", 0)) <= 0:
            continue
        label = labels.get(group, group)
        hints.append(FeatureHint(group, label, _hint_text(row, group, label)))
    return hints[:MAX_HINTS]


def _hint_text(row: dict[str, Any], group: str, label: str) -> str:
    name = str(row.get("feature", group))
    level = name.split("=", 1)[1] if "=" in name else None
    if level == "(missing)" and group == "days_since_activity":
        words = "No activity yet"
    elif level == "(missing)":
        words = f"{label} not given"
    elif level == "(other)":
        words = f"{label} is one of its rarer values"
    elif level is not None:
        words = f"{label} is {level}"
    else:
        words = label
    words = words[:1].upper() + words[1:]
    if "weight" in row:
        weight = float(row["weight"])
        way = "higher" if weight > 0 else "lower"
        said = (
            f"The more {label}, the {way} the model rates a lead"
            if level is None
            else f"{words}: the model rates such leads {way}"
        )
        return (
            f"{said} ({weight:+.2f} log-odds per standard deviation), and no switched-on rule "
            f"reads “{label}”."
        )
    importance = float(row["importance"])
    return (
        f"{words}: the model ranks the newest outcomes {importance:.3f} worse (ROC AUC) "
        f"without it, and no switched-on rule reads it."
    )


# --- The draft ----------------------------------------------------------------------------


def model_draft_from_distillation(
    *, model: ScoringModel, by: User | None, distillation: Distillation
) -> ScoringModel:
    """A draft version of ``model`` with the proposed points: rules proposed 0 switched
    off, the others on with their points; logged, no lead touched. Raises
    ``DistillationError`` when nothing is proposed."""
    if not distillation.ready:
        raise DistillationError(distillation.message)
    points = {row.rule_id: row.proposed_points for row in distillation.rules if row.changed}
    note = (
        f"Points derived on {timezone.now():%Y-%m-%d} from the live predictive model of "
        f"“{model}”, fitted on {distillation.leads} of its scored leads."
    )
    return model_draft_with_points(
        model=model, by=by, points=points, note=note, reason="Rule weights from the model"
    )
