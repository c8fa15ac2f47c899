"""Training, publishing and serving predictive models.

``predictive_train`` trains on a scoring model's closed leads, each read as of its
decision time (``features``), and keeps the result with its model card. **The publish
gate**: it goes live only when its ROC AUC on the newest outcomes (held out of training)
is at least the rule score's on the same leads and at least the live predictive model's,
and its calibration holds on every decile (``training.calibration_table``). Otherwise it
is kept as a report (*rejected*) and the live one stays. Below
``PREDICTIVE_MIN_CLOSED`` closed leads nothing is trained (``NotEnoughData`` says how
many more are needed) and the rules stay in charge.

Serving: when a model goes live every lead of the segment with a score in the scoring
model gets its predictive score, in chunks of set-based features and one numpy pass
(``predictive_scores_refresh``); afterwards real-time scoring refreshes the leads it
scores (``leads_predictive_scores``), with the same functions, so one lead's score is
the batch's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from crm.db import update_rows
from crm.models import User
from leads.models import DealOutcome, Lead

from ..batch_writes import LeadResult
from ..lead_sets import segment_lead_ids, segment_leads
from ..models import (
    DecisionBasis,
    LeadScore,
    ModelStatus,
    PredictiveModel,
    PredictiveStatus,
    ScoringModel,
)
from ..reactions import result_react
from ..rule_matrix import closed_outcomes
from ..ruleset import model_settings
from ..score_formula import band_for, decision_score
from . import training
from .artifacts import Artifact, artifact_bytes, artifact_of
from .encoding import encode, fit_encoding
from .explaining import Explanation, as_scores, explain, probabilities
from .features import (
    FieldSpec,
    LeakageError,
    RawFrame,
    decision_times,
    excluded_keys,
    feature_fields,
    feature_frame,
)

SCORE_CHUNK = 5000
MIN_PER_OUTCOME = 10


class NotEnoughData(Exception):
    """Too few closed leads to train on; the message says how many more are needed."""


@dataclass(frozen=True)
class Readiness:
    won: int
    lost: int
    minimum: int

    @property
    def closed(self) -> int:
        return self.won + self.lost

    @property
    def needed(self) -> int:
        """More closed leads needed: up to the minimum, and some of each outcome."""
        short = max(MIN_PER_OUTCOME - self.won, 0) + max(MIN_PER_OUTCOME - self.lost, 0)
        return max(self.minimum - self.closed, short)

    @property
    def message(self) -> str:
        return (
            f"Predictive scoring needs at least {self.minimum} closed leads (won or lost, "
            f"{MIN_PER_OUTCOME} of each at least) in this model's segment; it has "
            f"{self.won} won and {self.lost} lost: {self.needed} more closed leads needed. "
            "Until then the rules stay in charge."
        )


def predictive_readiness(*, model: ScoringModel) -> Readiness:
    """How many won and lost leads the model's segment has, against the minimum."""
    counts = dict(
        segment_leads(model)
        .filter(deal_outcome__gte=DealOutcome.LOST)
        .order_by()
        .values_list("deal_outcome")
        .annotate(n=Count("pk", distinct=True))
    )
    return Readiness(
        won=counts.get(DealOutcome.WON, 0),
        lost=counts.get(DealOutcome.LOST, 0),
        minimum=settings.PREDICTIVE_MIN_CLOSED,
    )


def live_predictive(model: ScoringModel) -> PredictiveModel | None:
    live = PredictiveModel.objects.filter(model=model, status=PredictiveStatus.LIVE)
    return live.defer("artifact").first()


# --- Training -----------------------------------------------------------------------------


def predictive_train(*, model: ScoringModel, by: User | None) -> PredictiveModel:
    """Train on ``model``'s closed leads, judge against the rules and the live predictive
    model, and publish when it passes the gate (module docstring). Raises
    ``NotEnoughData`` below the minimum."""
    readiness = predictive_readiness(model=model)
    if readiness.needed:
        raise NotEnoughData(readiness.message)
    lead_ids, won = closed_outcomes(segment_leads(model))
    decisions = decision_times(lead_ids)
    order = np.argsort([at.timestamp() for at in decisions.closed_at], kind="stable")
    lead_ids, won = lead_ids[order], won[order]
    decided = [decisions.decided_at[i] for i in order]
    closed = [decisions.closed_at[i] for i in order]
    excluded = excluded_keys(model)
    frame = feature_frame(
        lead_ids=lead_ids,
        as_of=decided,
        specs=feature_fields(model),
        excluded=excluded,
        decided_at=decided,
    )
    train_rows, _ = training.holdout_split(len(lead_ids))
    encoding = fit_encoding(frame.take(train_rows))
    x = encode(encoding, frame)
    fitted = training.fit(x, won)
    holdout_y = won[fitted.holdout]
    holdout_ids = lead_ids[fitted.holdout]
    live = live_predictive(model)
    calibration = training.calibration_table(
        fitted.probabilities, holdout_y, settings.PREDICTIVE_CALIBRATION_TOLERANCE
    )
    card = PredictiveModel(
        model=model,
        algorithm=fitted.algorithm,
        data_from=closed[0],
        data_to=closed[-1],
        n_train=fitted.n_train,
        n_holdout=len(holdout_y),
        n_won=int(won.sum()),
        n_lost=int(len(won) - won.sum()),
        roc_auc=training.auc_of(fitted.probabilities, holdout_y) or 0.5,
        brier=training.brier(fitted.probabilities, holdout_y),
        rule_auc=_rule_auc(model, holdout_ids, holdout_y),
        previous_auc=_previous_auc(
            live, holdout_ids, [decided[i] for i in fitted.holdout], holdout_y, excluded
        ),
        calibration_ok=all(row["ok"] for row in calibration),
        cv_scores={name: round(value, 4) for name, value in fitted.cv_scores.items()},
        calibration=calibration,
        lift=training.lift_table(fitted.probabilities, holdout_y),
        features=training.feature_weights(fitted, encoding, x[fitted.holdout], holdout_y),
        artifact=artifact_bytes(Artifact(encoding, fitted.estimator, fitted.reference)),
        created_by=by,
    )
    passed, card.verdict = gate(card)
    return _publish(card) if passed else _keep(card, PredictiveStatus.REJECTED)


def gate(card: PredictiveModel) -> tuple[bool, str]:
    """Whether a trained model may go live, and why in words."""
    rule_auc = card.rule_auc if card.rule_auc is not None else 0.5
    reasons = []
    if card.roc_auc < rule_auc:
        reasons.append(f"its ROC AUC {card.roc_auc:.3f} is below the rules' {rule_auc:.3f}")
    if card.previous_auc is not None and card.roc_auc < card.previous_auc:
        reasons.append(
            f"its ROC AUC {card.roc_auc:.3f} is below the live predictive model's "
            f"{card.previous_auc:.3f}"
        )
    if not card.calibration_ok:
        reasons.append("its predicted chances stray from the observed ones on some deciles")
    if reasons:
        return False, f"Kept as a report, not published: {'; '.join(reasons)} on the holdout."
    return True, (
        f"Published: ROC AUC {card.roc_auc:.3f} against the rules' {rule_auc:.3f} on the "
        "newest outcomes, calibrated on every decile."
    )


def _keep(card: PredictiveModel, status: str) -> PredictiveModel:
    card.status = status
    card.save()
    return card


def _publish(card: PredictiveModel) -> PredictiveModel:
    with transaction.atomic():
        PredictiveModel.objects.filter(model=card.model, status=PredictiveStatus.LIVE).update(
            status=PredictiveStatus.SUPERSEDED
        )
        _keep(card, PredictiveStatus.LIVE)
    predictive_scores_refresh(predictive=card)
    return card


def _rule_auc(model: ScoringModel, lead_ids: np.ndarray, won: np.ndarray) -> float | None:
    """The rule score's ROC AUC over the held-out leads (a lead without one scores 0)."""
    scores = dict(
        LeadScore.objects.filter(model=model, lead_id__in=[int(i) for i in lead_ids]).values_list(
            "lead_id", "score"
        )
    )
    return training.auc_of([scores.get(int(i), 0) for i in lead_ids], won)


def _previous_auc(
    live: PredictiveModel | None,
    lead_ids: np.ndarray,
    as_of: list[datetime],
    won: np.ndarray,
    excluded: set[str],
) -> float | None:
    """The live predictive model's ROC AUC on the same holdout; None without one, or when
    it reads a field now excluded (it gives way)."""
    if live is None:
        return None
    artifact = artifact_of(live)
    try:
        frame = feature_frame(
            lead_ids=lead_ids,
            as_of=as_of,
            specs=list(artifact.encoding.specs),
            excluded=excluded,
            decided_at=as_of,
        )
    except LeakageError:
        return None
    p = probabilities(artifact.estimator, encode(artifact.encoding, frame))
    return training.auc_of(p, won)


def predictive_retrain_all(*, by: User | None = None) -> int:
    """Beat's weekly retrain: every active model with enough closed leads; how many trained."""
    trained = 0
    for model in ScoringModel.objects.filter(status=ModelStatus.ACTIVE):
        if predictive_readiness(model=model).needed:
            continue
        predictive_train(model=model, by=by)
        trained += 1
    return trained


# --- Serving ------------------------------------------------------------------------------


def _scored_frame(
    artifact: Artifact, lead_ids: list[int], now: datetime
) -> tuple[RawFrame, np.ndarray]:
    specs: list[FieldSpec] = list(artifact.encoding.specs)
    frame = feature_frame(lead_ids=lead_ids, as_of=[now] * len(lead_ids), specs=specs)
    return frame, encode(artifact.encoding, frame)


def predictive_scores(
    *, predictive: PredictiveModel, lead_ids: list[int], now: datetime | None = None
) -> dict[int, int]:
    """The predictive score, 0 to 100, of each of ``lead_ids`` as of ``now``."""
    if not lead_ids:
        return {}
    chances = predictive_probabilities(predictive=predictive, lead_ids=lead_ids, now=now)
    scores = as_scores(chances)
    return {int(lead_id): int(score) for lead_id, score in zip(lead_ids, scores, strict=True)}


def predictive_probabilities(
    *, predictive: PredictiveModel, lead_ids: list[int], now: datetime | None = None
) -> np.ndarray:
    """The calibrated chance of conversion of each of ``lead_ids`` as of ``now``, in order:
    what its predictive score rounds."""
    if not lead_ids:
        return np.zeros(0)
    artifact = artifact_of(predictive)
    _, x = _scored_frame(artifact, lead_ids, now or timezone.now())
    return probabilities(artifact.estimator, x)


def predictive_scores_refresh(*, predictive: PredictiveModel, now: datetime | None = None) -> int:
    """Every scored lead of the segment gets ``predictive``'s score; how many."""
    now = now or timezone.now()
    ids = [int(i) for i in segment_lead_ids(predictive.model)]
    written = 0
    for start in range(0, len(ids), SCORE_CHUNK):
        written += _write_scores(predictive, ids[start : start + SCORE_CHUNK], now)
    return written


def predictive_carry_over(*, old: ScoringModel, new: ScoringModel) -> None:
    """A version published in place of ``old`` (or put back in its place) takes over its
    predictive models, the live one and the reports kept: they read the leads' fields and
    behaviour, not the rules, so the predictive score a rule change leaves alone stays.
    The new version's leads get it once its rescore has written their score rows
    (``predictive_scores_fill``). Nothing moves when ``new`` has a live one of its own."""
    if not PredictiveModel.objects.filter(model=new, status=PredictiveStatus.LIVE).exists():
        PredictiveModel.objects.filter(model=old).update(model=new)


def predictive_scores_missing(*, model_id: int) -> bool:
    """Whether the model has a live predictive model and scored leads without its score."""
    return (
        PredictiveModel.objects.filter(model_id=model_id, status=PredictiveStatus.LIVE).exists()
        and LeadScore.objects.filter(model_id=model_id, predictive_score__isnull=True).exists()
    )


def predictive_scores_fill(*, model_id: int, now: datetime | None = None) -> int:
    """The model's scored leads without a predictive score get the live predictive
    model's (after a rescore that wrote new score rows: a version just published, a
    segment widened); how many were scored."""
    live = (
        PredictiveModel.objects.filter(model_id=model_id, status=PredictiveStatus.LIVE)
        .select_related("model")
        .first()
    )
    if live is None:
        return 0
    now = now or timezone.now()
    ids = list(
        LeadScore.objects.filter(model_id=model_id, predictive_score__isnull=True)
        .order_by("lead_id")
        .values_list("lead_id", flat=True)
    )
    return sum(
        _write_scores(live, ids[start : start + SCORE_CHUNK], now)
        for start in range(0, len(ids), SCORE_CHUNK)
    )


def _write_scores(predictive: PredictiveModel, lead_ids: list[int], now: datetime) -> int:
    scored = list(
        LeadScore.objects.filter(model=predictive.model, lead_id__in=lead_ids).values_list(
            "lead_id", flat=True
        )
    )
    scores = predictive_scores(predictive=predictive, lead_ids=scored, now=now)
    model = predictive.model
    if model.decide_on == DecisionBasis.RULES:
        _store_scores(model.pk, scores)
    else:
        with transaction.atomic():
            _decide_again(model, scores)
    return len(scored)


def _decide_again(model: ScoringModel, scores: dict[int, int]) -> None:
    """Store new predictive scores of a model that bands its leads on them (or on a
    blend), with the bands and stage moves they make, as real-time scoring makes them
    (``scoring.reactions.result_react``): only the leads whose predictive score moved
    are locked, read and written."""
    stored = dict(
        LeadScore.objects.filter(model=model, lead_id__in=scores).values_list(
            "lead_id", "predictive_score"
        )
    )
    moved = sorted(lead_id for lead_id, old in stored.items() if old != scores[lead_id])
    if not moved:
        return
    leads = list(Lead.objects.select_for_update(of=("self",)).filter(pk__in=moved).order_by("pk"))
    rows = list(LeadScore.objects.filter(model=model, lead_id__in=moved))
    before = {row.lead_id: row.predictive_score for row in rows}
    compiled = model_settings(model)
    t = compiled.thresholds
    for row in rows:
        row.predictive_score = scores[row.lead_id]
        row.band = band_for(decision_score(row.score, row.predictive_score, t), t)
    update_rows(rows, ["predictive_score", "band"])
    primary = {row.lead_id: row for row in rows if row.is_primary}
    results = []
    for lead in leads:
        primary_row = primary.get(lead.pk)
        if primary_row is None:
            continue
        shown, predictive = lead.band, primary_row.predictive_score
        lead.band = band_for(decision_score(lead.score, predictive, t), t)
        results.append(
            LeadResult(
                lead=lead,
                before=(lead.score, shown),
                predictive_before=before[lead.pk],
                predictive=predictive,
                primary=compiled,
            )
        )
    update_rows([r.lead for r in results if r.lead.band != r.before[1]], ["band"])
    for result in results:
        result_react(result)


def _store_scores(model_id: int, scores: dict[int, int]) -> None:
    """Write the scores onto the leads' score rows in ``model_id``, only where they moved.

    On PostgreSQL one UPDATE joined to the scores as arrays (Django's ``bulk_update``
    loads the rows and rewrites each of them through a CASE of the whole batch);
    elsewhere ``bulk_update``."""
    if connection.vendor != "postgresql":
        rows = list(LeadScore.objects.filter(model_id=model_id, lead_id__in=scores))
        for row in rows:
            row.predictive_score = scores[row.lead_id]
        LeadScore.objects.bulk_update(rows, ["predictive_score"], batch_size=1000)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE scoring_leadscore ls SET predictive_score = v.score "
            "FROM unnest(%s::bigint[], %s::smallint[]) AS v(lead_id, score) "
            "WHERE ls.model_id = %s AND ls.lead_id = v.lead_id "
            "AND ls.predictive_score IS DISTINCT FROM v.score",
            [list(scores), list(scores.values()), model_id],
        )


def leads_predictive_scores(*, lead_ids: list[int], now: datetime) -> dict[tuple[int, int], int]:
    """The predictive scores of leads about to be scored, by (lead, scoring model), in
    every model with a live predictive model, read as of ``now``; real-time scoring
    writes them with the rule scores, so a model deciding on them bands the lead once
    (one query when no predictive model is live)."""
    live = PredictiveModel.objects.filter(status=PredictiveStatus.LIVE).defer("artifact")
    return {
        (lead_id, predictive.model_id): score
        for predictive in live
        for lead_id, score in predictive_scores(
            predictive=predictive, lead_ids=lead_ids, now=now
        ).items()
    }


def lead_predictive_explanations(*, lead_id: int, model_ids: list[int]) -> dict[int, Explanation]:
    """The predictive score and its factors in each of ``model_ids`` with a live
    predictive model (one query when none is live)."""
    live = PredictiveModel.objects.filter(model_id__in=model_ids, status=PredictiveStatus.LIVE)
    now = timezone.now()
    out = {}
    for predictive in live.defer("artifact").select_related("model"):
        explanation = lead_predictive_explanation(lead_id=lead_id, model=predictive.model, now=now)
        if explanation is not None:
            out[predictive.model_id] = explanation
    return out


def lead_predictive_explanation(
    *, lead_id: int, model: ScoringModel, now: datetime | None = None
) -> Explanation | None:
    """The live predictive score of the lead in ``model`` and its factors; None when no
    predictive model is live."""
    predictive = live_predictive(model)
    if predictive is None:
        return None
    artifact = artifact_of(predictive)
    frame, x = _scored_frame(artifact, [lead_id], now or timezone.now())
    return explain(
        estimator=artifact.estimator,
        encoding=artifact.encoding,
        reference=artifact.reference,
        x=x,
        frame=frame,
        row=0,
    )


# --- Beside the rules ---------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    """Where the rule score and the predictive score rank a model's leads far apart: the
    top fifth by one in the bottom half by the other, with the widest gaps as examples
    (lead id, name, rule score, predictive score)."""

    scored: int
    rules_high: int  # rules' top fifth, predictive bottom half
    predictive_high: int  # the reverse
    rules_high_examples: list[tuple[int, str, int, int]]
    predictive_high_examples: list[tuple[int, str, int, int]]


def predictive_disagreement(*, model: ScoringModel, examples: int = 5) -> Disagreement:
    rows = np.array(
        list(
            LeadScore.objects.filter(model=model, predictive_score__isnull=False).values_list(
                "lead_id", "score", "predictive_score"
            )
        ),
        dtype=np.int64,
    ).reshape(-1, 3)
    if not len(rows):
        return Disagreement(0, 0, 0, [], [])
    rule_rank, predictive_rank = _share_below(rows[:, 1]), _share_below(rows[:, 2])
    gap = rule_rank - predictive_rank
    rules_high = (rule_rank >= 0.8) & (predictive_rank < 0.5)
    predictive_high = (predictive_rank >= 0.8) & (rule_rank < 0.5)
    return Disagreement(
        len(rows),
        int(rules_high.sum()),
        int(predictive_high.sum()),
        _examples(rows, np.flatnonzero(rules_high)[np.argsort(-gap[rules_high])][:examples]),
        _examples(
            rows, np.flatnonzero(predictive_high)[np.argsort(gap[predictive_high])][:examples]
        ),
    )


def _share_below(values: np.ndarray) -> np.ndarray:
    """Each value's share of the values below it (ties: none of each other)."""
    ordered = np.sort(values)
    return np.searchsorted(ordered, values, side="left") / len(values)


def _examples(rows: np.ndarray, picked: np.ndarray) -> list[tuple[int, str, int, int]]:
    ids = [int(rows[i, 0]) for i in picked]
    names = {
        pk: (f"{first} {last}".strip() or email)
        for pk, first, last, email in Lead.objects.filter(pk__in=ids).values_list(
            "pk", "first_name", "last_name", "email"
        )
    }
    return [
        (int(rows[i, 0]), names.get(int(rows[i, 0]), ""), int(rows[i, 1]), int(rows[i, 2]))
        for i in picked
    ]
