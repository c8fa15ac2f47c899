"""Suggested weights: points for a model's rules fitted on its closed leads, and the rules
whose single-rule lift misleads, in words.

``model_suggestion`` fits an L2-regularized logistic regression (scikit-learn) of won
against lost over the rule matrix of the model's closed leads (``scoring.rule_matrix``):
one column per rule, 1/0 for a fit rule, the number of counted matches for an
engagement rule. The columns are standardized so the penalty treats every rule alike,
the classes are weighted to balance, and the penalty's strength ``C`` is chosen by
stratified cross-validation on the log-loss. A coefficient is then the log-odds one
match adds with every other rule held fixed.

**Points.** A rule's suggested points are ``k * coefficient``, rounded, one ``k``
(points per unit of log-odds) for the whole model, chosen so that the suggested
points give a closed lead on average as many points (in absolute value) as the
current points of the same rules do: ``k = Σ|points|·mean(x) / Σ|coefficient|·mean(x)``
over the judged rules, the current points counting only for rules switched on now
(``k`` is 10 when that says nothing). So the
scores stay on the scale the thresholds are set on, and points keep the fitted
log-odds' proportions. Bonus points are left as they are; no base score is proposed.

**Flags, in words.**
- *Too few to judge*: a rule matching fewer than ``MIN_RULE_MATCHES`` closed leads, or
  all but fewer than that, is left out of the fit and keeps its points.
- *Duplicate*: rules matching nearly the same closed leads (Jaccard ≥ 0.9) cannot be
  told apart; the one the fit weighs most is kept, the others are suggested 0.
- *Confounded*: a rule whose single-rule lift is clear (its 95 % interval excludes 1)
  but whose fitted effect is near zero (under a quarter of its single-rule log-odds
  ratio) or of the opposite sign: its lift comes with another rule's leads, named.

Below ``SCORING_SUGGEST_MIN_CLOSED`` won or lost leads nothing is proposed and the
answer says how many more are needed. A suggestion is kept in the shared cache for
``CACHE_SECONDS`` while the model, its rules and its closed leads stay the same.
``model_draft_from_suggestion`` turns a suggestion into a draft version of the model
(``scoring.changes.model_duplicate``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from crm.models import User
from crm.resilience import cache_call

from . import changes
from .lead_sets import segment_leads
from .lift import Lift, lift_with_interval
from .models import Rule, ScoringModel
from .models.rule import custom_field_kinds
from .rule_fields import RuleError
from .rule_matrix import RuleMatrix, closed_outcomes, rule_matrix
from .rules import FIT
from .ruleset import Ruleset, load_ruleset, model_settings

# A rule is judged with at least this many closed leads it matches and it does not.
MIN_RULE_MATCHES = 10
DUPLICATE_JACCARD = 0.9
# A fitted effect under this share of the single-rule log-odds ratio is "near zero".
CONFOUNDED_SHARE = 0.25
# Rules correlated at least this much are named as the source of a confounded lift.
CONFOUNDER_CORRELATION = 0.2
# The candidate penalties, and the rows the cross-validation runs on (a stratified
# sample: the final fit reads every closed lead).
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
CV_FOLDS = 5
CV_SAMPLE = 20_000
DEFAULT_C = 1.0
FALLBACK_POINTS_PER_LOG_ODDS = 10.0
# A suggestion is kept this long for the same model, rules and closed leads: reading it
# and then turning it into a draft fit once.
CACHE_SECONDS = 600

DUPLICATE, CONFOUNDED, TOO_FEW = "duplicate", "confounded", "too_few"


@dataclass(frozen=True)
class Flag:
    """Why a rule's suggestion needs a second look: ``code`` for programs, ``text`` in words."""

    code: str
    text: str


class PointsProposal:
    """A rule's points now and as proposed (suggested weights, the predictive model's):
    what a draft made of the proposal does with the rule."""

    active: bool
    current_points: int

    @property
    def new_points(self) -> int:
        raise NotImplementedError

    @property
    def switched_off(self) -> bool:
        """A rule proposed 0 points is switched off in the draft (0 is no rule's points)."""
        return self.new_points == 0

    @property
    def changed(self) -> bool:
        if self.switched_off:
            return self.active
        return not self.active or self.new_points != self.current_points


@dataclass(frozen=True)
class RuleSuggestion(PointsProposal):
    """One rule: its points now and suggested, beside its single-rule lift."""

    rule_id: int
    name: str
    sentence: str
    kind: str
    active: bool
    current_points: int
    suggested_points: int
    matched: int  # closed leads it matches
    won: int  # of them won
    lift: Lift
    log_odds: float | None  # fitted log-odds per match; None when not fitted
    flags: tuple[Flag, ...] = ()

    @property
    def new_points(self) -> int:
        return self.suggested_points


@dataclass(frozen=True)
class WeightSuggestion:
    """Suggested points for a model's rules from its closed leads, or why there are none."""

    model: ScoringModel
    won: int
    lost: int
    min_closed: int
    rules: list[RuleSuggestion] = field(default_factory=list)
    points_per_log_odds: float | None = None
    regularization: float | None = None  # the C chosen
    cross_validated: bool = False
    message: str = ""

    @property
    def ready(self) -> bool:
        return bool(self.rules)

    @property
    def needed_won(self) -> int:
        return max(self.min_closed - self.won, 0)

    @property
    def needed_lost(self) -> int:
        return max(self.min_closed - self.lost, 0)


class SuggestionError(Exception):
    """No suggestion to turn into a draft; the message says why."""


def model_suggestion(*, model: ScoringModel, now: datetime | None = None) -> WeightSuggestion:
    """Suggested points for every rule of ``model`` (switched off ones too) from the won
    and lost leads of its segment, with flags in words (module docstring). Reads only."""
    now = now or timezone.now()
    basis = suggestion_basis(model=model)
    base, key, lead_ids, won = basis.base, basis.key, basis.lead_ids, basis.won
    if key is None:
        return base
    cached = kept_suggestion(key=key)
    if cached is not None:
        return cached
    ruleset, rules = candidate_rules(model)
    if not rules:
        return _replace(base, message="The model has no rule to weigh.")
    matrix = rule_matrix(lead_ids=lead_ids, won=won, ruleset=ruleset, now=now)
    suggestion = _suggest(base, matrix, rules)
    store = partial(cache.set, key, suggestion, CACHE_SECONDS)
    cache_call(store, default=None, what="Suggested weights")
    return suggestion


@dataclass(frozen=True)
class SuggestionBasis:
    """The closed leads a suggestion is fitted on: their counts (and, with too few, the
    answer saying how many more are needed) and the key the suggestion is kept under
    (None with too few)."""

    base: WeightSuggestion
    key: str | None
    lead_ids: np.ndarray
    won: np.ndarray


def suggestion_basis(*, model: ScoringModel) -> SuggestionBasis:
    """Read the won and lost leads of ``model``'s segment (one query, no fit)."""
    minimum = settings.SCORING_SUGGEST_MIN_CLOSED
    lead_ids, won = closed_outcomes(segment_leads(model))
    n_won, n_lost = int(won.sum()), int(len(won) - won.sum())
    base = WeightSuggestion(model=model, won=n_won, lost=n_lost, min_closed=minimum)
    if base.needed_won or base.needed_lost:
        return SuggestionBasis(_replace(base, message=_more_needed(base)), None, lead_ids, won)
    return SuggestionBasis(base, _cache_key(model, lead_ids, n_won), lead_ids, won)


def kept_suggestion(*, key: str) -> WeightSuggestion | None:
    """The suggestion kept under ``key``, if any (none when the cache is down)."""
    found = cache_call(partial(cache.get, key), default=None, what="Suggested weights")
    return found if isinstance(found, WeightSuggestion) else None


def _cache_key(model: ScoringModel, lead_ids: np.ndarray, won: int) -> str:
    """Changes with the model, any of its rules, and the closed leads' ids and outcomes
    counted; ``CACHE_SECONDS`` bound what it cannot see (a lead's fields, activities)."""
    rules = model.rules.aggregate(n=Count("pk"), last=Max("pk"), at=Max("updated_at"))
    parts = (model.pk, model.updated_at, *rules.values(), len(lead_ids), int(lead_ids.sum()), won)
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
    return f"scoring:suggestion:{model.pk}:{digest}"


def model_draft_from_suggestion(
    *, model: ScoringModel, by: User | None, suggestion: WeightSuggestion
) -> ScoringModel:
    """A draft version of ``model`` with the points of ``suggestion`` (one kept: the
    surfaces never fit in a request, ``scoring.suggestion_runs.model_draft_request``):
    rules suggested 0 switched off, the others on with their points. The draft and each
    rule it changes are logged; no lead is touched. Raises ``SuggestionError`` when
    nothing is suggested."""
    if not suggestion.ready:
        raise SuggestionError(suggestion.message)
    points = {row.rule_id: row.suggested_points for row in suggestion.rules if row.changed}
    return model_draft_with_points(
        model=model,
        by=by,
        points=points,
        note=_draft_note(suggestion, now=timezone.now()),
        reason="Suggested weights",
    )


def model_draft_with_points(
    *, model: ScoringModel, by: User | None, points: dict[int, int], note: str, reason: str
) -> ScoringModel:
    """A draft version of ``model`` (``scoring.changes.model_duplicate``) whose copies of
    the rules in ``points`` (rule id: points) get those points, switched on, or are
    switched off for 0 (0 is no rule's points); ``note`` is its description. The draft
    and each rule it changes are logged (``reason``); no lead is touched."""
    with transaction.atomic():
        originals = list(model.rules.all())
        draft = changes.model_duplicate(model=model, by=by)
        # model_duplicate copies the rules in this order, so their ids follow it.
        copies = list(draft.rules.order_by("pk"))
        for original, copy in zip(originals, copies, strict=True):
            if original.pk in points:
                _apply(copy, points[original.pk], by)
        before = changes.model_snapshot(model=draft)
        draft.description = note
        draft.save(update_fields=["description", "updated_at"])
        changes.model_save(model=draft, before=before, by=by, reason=reason)
    return draft


def _apply(rule: Rule, points: int, by: User | None) -> None:
    before = changes.rule_snapshot(rule=rule)
    rule.active = points != 0
    if points:
        rule.points = points
    rule.save(update_fields=["points", "active", "updated_at"])
    changes.rule_save(rule=rule, before=before, by=by)


def _draft_note(suggestion: WeightSuggestion, *, now: datetime) -> str:
    return (
        f"Points suggested from {suggestion.won} won and {suggestion.lost} lost leads of "
        f"“{suggestion.model}” on {now:%Y-%m-%d}."
    )


def _replace(base: WeightSuggestion, **values: Any) -> WeightSuggestion:
    return replace(base, **values)


def _more_needed(base: WeightSuggestion) -> str:
    needs = [
        f"{n} more {outcome} lead{'s' if n != 1 else ''}"
        for n, outcome in ((base.needed_won, "won"), (base.needed_lost, "lost"))
        if n
    ]
    return (
        f"Suggested weights need at least {base.min_closed} won and {base.min_closed} lost "
        f"leads in this model's segment; it has {base.won} won and {base.lost} lost: "
        f"{' and '.join(needs)} needed."
    )


def candidate_rules(model: ScoringModel) -> tuple[Ruleset, dict[int, Rule]]:
    """The model with every rule that can be evaluated, switched off or not."""
    compiled = model_settings(model)
    kinds = custom_field_kinds()
    rules: dict[int, Rule] = {}
    for rule in model.rules.all():
        try:
            spec = rule.spec(kinds)
        except RuleError:
            continue  # a rule broken by a later change scores nothing, and is not weighed
        rules[rule.pk] = rule
        (compiled.fit_rules if spec.kind == FIT else compiled.engagement_rules).append(spec)
    domain_lists = load_ruleset([]).domain_lists
    return Ruleset([compiled], domain_lists), rules


# --- The fit -------------------------------------------------------------------------------


@dataclass
class _Column:
    """A rule's figures over the closed leads."""

    index: int
    rule: Rule
    matched: int
    won: int
    lift: Lift
    log_odds_ratio: float
    typical: float  # mean of its column over the leads it matches
    flags: list[Flag] = field(default_factory=list)
    weight: float | None = None  # fitted log-odds per unit
    duplicate_of: _Column | None = None

    @property
    def effect(self) -> float:
        """The fitted log-odds of a typical match."""
        return (self.weight or 0.0) * self.typical


def _suggest(
    base: WeightSuggestion, matrix: RuleMatrix, rules: dict[int, Rule]
) -> WeightSuggestion:
    columns = [_column(i, rules[spec.id], matrix) for i, spec in enumerate(matrix.rules)]
    judged = [c for c in columns if _judgeable(c, len(matrix.won))]
    for column in columns:
        if column not in judged:
            column.flags.append(Flag(TOO_FEW, _too_few_text(column, len(matrix.won))))
    if not judged:
        return _replace(base, message="No rule matches enough closed leads to be judged.")
    # One thread: a request or task shares the machine, and numerical libraries that
    # start a thread per core for these small matrices only wait on one another.
    with threadpool_limits(limits=1):
        C, cross_validated = _choose_c(matrix, judged)
        _fit(matrix, judged, C)
        kept = _drop_duplicates(matrix, judged)
        if len(kept) < len(judged):
            _fit(matrix, kept, C)
    _flag_confounded(matrix, kept)
    k = _points_per_log_odds(matrix, judged)
    rows = [_row(column, k) for column in columns]
    rows.sort(key=lambda row: (-row.suggested_points, -row.current_points, row.rule_id))
    return _replace(
        base,
        rules=rows,
        points_per_log_odds=k,
        regularization=C,
        cross_validated=cross_validated,
        message=f"Fitted on {base.won} won and {base.lost} lost leads.",
    )


def _column(index: int, rule: Rule, matrix: RuleMatrix) -> _Column:
    hit = matrix.matched[:, index]
    matched, won_in = int(hit.sum()), int(matrix.won[hit].sum())
    won_total, closed = int(matrix.won.sum()), len(matrix.won)
    lift = lift_with_interval(won_in, matched, won_total - won_in, closed - matched)
    lost_in, lost_out = matched - won_in, closed - matched - (won_total - won_in)
    # Haldane's half lead in every cell keeps the ratio finite.
    ratio = ((won_in + 0.5) * (lost_out + 0.5)) / ((lost_in + 0.5) * (won_total - won_in + 0.5))
    typical = float(matrix.values[hit, index].mean()) if matched else 0.0
    return _Column(index, rule, matched, won_in, lift, math.log(ratio), typical)


def _judgeable(column: _Column, closed: int) -> bool:
    return min(column.matched, closed - column.matched) >= MIN_RULE_MATCHES


def _too_few_text(column: _Column, closed: int) -> str:
    if column.matched < MIN_RULE_MATCHES:
        return (
            f"Matches only {column.matched} of the {closed} closed leads: too few to judge; "
            "its points are kept."
        )
    return (
        f"Matches {column.matched} of the {closed} closed leads, nearly all: nothing to "
        "compare them with; its points are kept."
    )


def _pipeline(C: float) -> Pipeline:
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    )


def _choose_c(matrix: RuleMatrix, columns: list[_Column]) -> tuple[float, bool]:
    """The penalty with the best cross-validated log-loss, or ``DEFAULT_C`` when a class
    has too few leads for the folds."""
    X, y = matrix.values[:, [c.index for c in columns]], matrix.won
    folds = min(CV_FOLDS, int(y.sum()), int(len(y) - y.sum()))
    if folds < 3:
        return DEFAULT_C, False
    if len(y) > CV_SAMPLE:
        X, _, y, _ = train_test_split(X, y, train_size=CV_SAMPLE, stratify=y, random_state=0)
    search = GridSearchCV(
        _pipeline(DEFAULT_C),
        {"logisticregression__C": list(C_GRID)},
        cv=StratifiedKFold(folds, shuffle=True, random_state=0),
        scoring="neg_log_loss",
    )
    search.fit(X, y)
    return float(search.best_params_["logisticregression__C"]), True


def _fit(matrix: RuleMatrix, columns: list[_Column], C: float) -> None:
    """Set each column's ``weight``: log-odds per unit, on the columns' own scale."""
    pipeline = _pipeline(C).fit(matrix.values[:, [c.index for c in columns]], matrix.won)
    scaler, regression = pipeline[0], pipeline[-1]
    for column, coefficient, scale in zip(columns, regression.coef_[0], scaler.scale_, strict=True):
        column.weight = float(coefficient / scale)


def _drop_duplicates(matrix: RuleMatrix, columns: list[_Column]) -> list[_Column]:
    """The columns without duplicates: of rules matching nearly the same closed leads,
    the one whose standardized weight is largest stays; the others are flagged."""
    hits = matrix.matched[:, [c.index for c in columns]].astype(np.float64)
    both = hits.T @ hits
    sizes = np.diag(both)
    jaccard = both / (sizes[:, None] + sizes[None, :] - both)
    spread = matrix.values[:, [c.index for c in columns]].std(axis=0)
    strength = [abs(c.weight or 0.0) * s for c, s in zip(columns, spread, strict=True)]
    order = sorted(range(len(columns)), key=lambda i: (-strength[i], columns[i].rule.pk))
    kept: list[int] = []
    for i in order:
        twin = next((j for j in kept if jaccard[i, j] >= DUPLICATE_JACCARD), None)
        if twin is None:
            kept.append(i)
            continue
        column, original = columns[i], columns[twin]
        column.duplicate_of, column.weight = original, 0.0
        column.flags.append(
            Flag(
                DUPLICATE,
                f"Matches nearly the same closed leads as “{original.rule.name}” "
                f"({jaccard[i, twin]:.0%} in common): the two cannot be told apart, so "
                f"its weight goes to “{original.rule.name}” and it is suggested 0.",
            )
        )
    return [columns[i] for i in sorted(kept)]


def _flag_confounded(matrix: RuleMatrix, columns: list[_Column]) -> None:
    if len(columns) < 2:
        return
    values = matrix.values[:, [c.index for c in columns]]
    correlation = np.nan_to_num(np.corrcoef(values, rowvar=False))
    for i, column in enumerate(columns):
        lift, single = column.lift, column.log_odds_ratio
        if lift.value is None or lift.includes_one:
            continue
        opposite = column.effect * single < 0
        if not opposite and abs(column.effect) >= CONFOUNDED_SHARE * abs(single):
            continue
        column.flags.append(Flag(CONFOUNDED, _confounded_text(column, columns, correlation[i])))


def _confounded_text(column: _Column, columns: list[_Column], correlation: np.ndarray) -> str:
    assert column.lift.value is not None
    others = [
        (abs(float(correlation[j])), other)
        for j, other in enumerate(columns)
        if other is not column and abs(other.effect) > abs(column.effect)
    ]
    source = max(others, key=lambda pair: pair[0], default=(0.0, None))
    lift = column.lift.value
    said = (
        f"Its leads convert {lift:.1f} times as often as the others"
        if lift >= 1
        else f"Its leads convert {lift:.1f} times as often as the others (less)"
    )
    held = (
        "with the other rules held fixed it points the other way"
        if column.effect * column.log_odds_ratio < 0
        else "with the other rules held fixed it adds almost nothing"
    )
    if source[1] is not None and source[0] >= CONFOUNDER_CORRELATION:
        reason = f"that lift comes with “{source[1].rule.name}”, which its leads tend to match"
    else:
        reason = "that lift comes with the other rules its leads match"
    return f"{said}, but {held}: {reason}. Its single-rule lift is confounded."


def _points_per_log_odds(matrix: RuleMatrix, columns: list[_Column]) -> float:
    """``k`` (module docstring): the suggested points of ``columns`` give a closed lead
    on average as many points as their current points do (those switched on)."""
    means = matrix.values.mean(axis=0)
    return points_per_log_odds(
        means=[means[c.index] for c in columns],
        points=[c.rule.points if c.rule.active else 0 for c in columns],
        weights=[c.weight or 0.0 for c in columns],
    )


def points_per_log_odds(*, means: list[float], points: list[int], weights: list[float]) -> float:
    """Points per unit of log-odds such that ``weights`` (log-odds per unit of each rule's
    column) turned into points give a lead on average as many points, in absolute value,
    as ``points`` (0 for a rule switched off) do, ``means`` being the columns' means:
    ``Σ|points|·mean / Σ|weight|·mean``; ``FALLBACK_POINTS_PER_LOG_ODDS`` when either is 0."""
    current = sum(abs(p) * m for p, m in zip(points, means, strict=True))
    fitted = sum(abs(w) * m for w, m in zip(weights, means, strict=True))
    if current <= 0 or fitted <= 0:
        return FALLBACK_POINTS_PER_LOG_ODDS
    return float(current / fitted)


def _row(column: _Column, k: float) -> RuleSuggestion:
    rule = column.rule
    if column.weight is None:  # not judged: kept as it is
        suggested = rule.points if rule.active else 0
    else:
        suggested = round(k * column.weight)
    return RuleSuggestion(
        rule_id=rule.pk,
        name=rule.name,
        sentence=rule.describe(),
        kind=rule.kind,
        active=rule.active,
        current_points=rule.points,
        suggested_points=suggested,
        matched=column.matched,
        won=column.won,
        lift=column.lift,
        log_odds=column.weight,
        flags=tuple(column.flags),
    )
