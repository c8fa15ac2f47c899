"""A candidate version of a scoring model against the live version it would replace.

``version_preview`` scores both versions on the same leads (the live model's) at the
same instant, with the same engine, and compares them: the score histogram, the open
leads that would change band and stage and be handed off (at publication, and a week
from new leads), conversion by band and decile, the ROC AUC and lift on won and lost
leads, and the same AUC on the older and the newer half of them. Each of these reads the
score the version decides on (``ScoringModel.decide_on``: the rule score, the predictive
score or a blend, ``score_formula.decision_score``), with the live predictive model's
score of each lead for both versions: a published version takes that model over
(``predictive_carry_over``). The per-lead work is
set-based on PostgreSQL (``scoring.version_preview_sql``: the rescore's SQL into
temporary tables), else the scoring engine's (``scoring.engine.Batch``), each inside a
transaction that is rolled back, so nothing is saved; what it keeps is compact counts
(``VersionTallies``), from which a threshold edit is previewed without scoring again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Max
from django.utils import timezone

from leads.models import Deal, Lead, Stage

from .batch_writes import LeadResult
from .engine import Batch, batch_awards
from .evaluation import (
    Bin,
    Group,
    deciles,
    histogram,
    lift,
    lowest_won,
    roc_auc,
    won_share_floor,
)
from .lead_sets import CHUNK_SIZE, chunks, segment_lead_ids
from .models import LeadScore, Rule, ScoringModel
from .reactions import AUTO_QUALIFIABLE
from .ruleset import CompiledModel, load_ruleset
from .score_formula import DECISION_NAMES, PREDICTIVE, RULES, Thresholds, band_for, decision_score
from .selectors import RuleReach
from .version_preview_sql import tallies_sql

# The leads created this many days back give the hand-offs a week a version would cause.
RECENT_DAYS = 28
# A version's figures are kept this long (they change with the leads, the rules and the
# thresholds; an edit of the draft or its rules changes the key at once).
TALLY_SECONDS = 600
# In the key of the kept figures: a new shape of ``VersionTallies`` gets a new number, so
# that tallies kept by the code before it are not read.
TALLY_SHAPE = 2


@dataclass(frozen=True)
class ClosedLead:
    """A won or lost lead as each version scores it (rule scores), with its predictive
    score."""

    live: int
    candidate: int
    won: bool
    closed_at: datetime
    predictive: int | None = None


# A lead's rule score in a version and its predictive score (None: none, or neither
# version decides on it): what the score the version decides on follows from.
Scored = tuple[int, int | None]


@dataclass
class VersionTallies:
    """The scores two versions give the same leads, counted compactly enough to keep:
    every figure of ``VersionPreview`` follows from these and a version's thresholds.
    Scores are rule scores beside the lead's predictive score, kept only when either
    version decides on it (``reads_predictive``): so a threshold edit, a base score
    tried included, gives the decided score without scoring again."""

    live_id: int
    candidate_id: int
    scored: int = 0
    live_scores: Counter[Scored] = field(default_factory=Counter)
    candidate_scores: Counter[Scored] = field(default_factory=Counter)
    # Open leads (neither won nor lost): by (stage, live band on the score the live
    # version decides on, candidate score, predictive score).
    open_leads: Counter[tuple[str, str, int, int | None]] = field(default_factory=Counter)
    # Leads created in the last ``RECENT_DAYS``: by (live score, candidate score,
    # predictive score).
    recent: Counter[tuple[int, int, int | None]] = field(default_factory=Counter)
    closed: list[ClosedLead] = field(default_factory=list)
    rules: dict[int, dict[int, RuleReach]] = field(default_factory=dict)
    at: datetime | None = None


def version_tallies(
    *, candidate: ScoringModel, now: datetime | None = None, set_based: bool | None = None
) -> VersionTallies:
    """Score the live model's leads with ``candidate`` and with the live version it would
    replace, at one instant, saving nothing (module docstring); kept for a few minutes
    under a key that any edit of either version or its rules changes.

    On PostgreSQL the scoring is set-based (``scoring.version_preview_sql``), elsewhere
    lead by lead with the engine; ``set_based`` chooses (True needs PostgreSQL)."""
    live = _live_version(candidate)
    key = _tallies_key(candidate, live)
    if now is None:
        kept = cache.get(key)
        if isinstance(kept, VersionTallies):
            return kept
    if set_based is None:
        set_based = connection.vendor == "postgresql"
    score = _score_both_sql if set_based else _score_both
    tallies = score(candidate=candidate, live=live, now=now or timezone.now())
    cache.set(key, tallies, TALLY_SECONDS)
    return tallies


def _live_version(candidate: ScoringModel) -> ScoringModel:
    if not candidate.is_candidate or candidate.version_of is None:
        raise PreviewError(f"“{candidate}” is not a draft version of a live model.")
    return candidate.version_of


class PreviewError(Exception):
    """A model that has no live version to be previewed against."""


def _tallies_key(candidate: ScoringModel, live: ScoringModel) -> str:
    parts = []
    for model in (candidate, live):
        rules = Rule.objects.filter(model=model).aggregate(at=Max("updated_at"), n=Count("id"))
        parts.append(f"{model.pk}.{model.updated_at.timestamp()}.{rules['at']}.{rules['n']}")
    return f"scoring:version-tallies:{TALLY_SHAPE}:" + ":".join(parts).replace(" ", "_")


def reads_predictive(live: ScoringModel, candidate: ScoringModel) -> bool:
    """Whether either version decides on the predictive score; if not, the tallies keep
    none (the figures would not change) and stay as compact as the rule scores."""
    return live.decide_on != RULES or candidate.decide_on != RULES


def _live_predictive(live: ScoringModel, lead_ids: list[int]) -> dict[int, int]:
    """The live predictive model's score of each lead that has one."""
    rows = LeadScore.objects.filter(model=live, lead_id__in=lead_ids).values_list(
        "lead_id", "predictive_score"
    )
    return {lead_id: predictive for lead_id, predictive in rows if predictive is not None}


def _score_both(*, candidate: ScoringModel, live: ScoringModel, now: datetime) -> VersionTallies:
    ruleset = load_ruleset([live, candidate])
    live_c, candidate_c = ruleset.models
    outcomes = lead_outcomes()
    since = now - timedelta(days=RECENT_DAYS)
    tallies = VersionTallies(live_id=live.pk, candidate_id=candidate.pk, at=now)
    tallies.rules = {live.pk: {}, candidate.pk: {}}
    ids = list(segment_lead_ids(candidate))
    reads = reads_predictive(live, candidate)
    with transaction.atomic():
        for chunk in chunks(ids, CHUNK_SIZE):
            # In id order, as the set-based preview lists them (the lead's own ordering
            # ties on equal times).
            leads = list(Lead.objects.filter(pk__in=chunk).select_related("company").order_by("pk"))
            batch = Batch(leads, ruleset, now)
            predictive = _live_predictive(live, chunk) if reads else {}
            for lead in leads:
                scores = (
                    _version_score(batch, lead, live_c, tallies.rules[live.pk], now),
                    _version_score(batch, lead, candidate_c, tallies.rules[candidate.pk], now),
                    predictive.get(lead.pk),
                )
                _tally(tallies, lead, scores, live_c, outcomes.get(lead.pk), since)
        transaction.set_rollback(True)
    return tallies


def _score_both_sql(
    *, candidate: ScoringModel, live: ScoringModel, now: datetime
) -> VersionTallies:
    live_c, candidate_c = load_ruleset([live, candidate]).models
    found = tallies_sql(
        live=live_c,
        candidate=candidate_c,
        segment=live,
        now=now,
        since=now - timedelta(days=RECENT_DAYS),
        predictive_of=live if reads_predictive(live, candidate) else None,
    )
    return VersionTallies(
        live_id=live.pk,
        candidate_id=candidate.pk,
        scored=found["scored"],
        live_scores=found["live_scores"],
        candidate_scores=found["candidate_scores"],
        open_leads=found["open_leads"],
        recent=found["recent"],
        closed=[ClosedLead(*row) for row in found["closed"]],
        rules=found["rules"],
        at=now,
    )


def _version_score(
    batch: Batch, lead: Lead, model: CompiledModel, reach: dict[int, RuleReach], now: datetime
) -> int:
    """The lead's rule score in ``model``, and what each of its rules gave the lead."""
    result = LeadResult(lead=lead, before=(lead.score, lead.band))
    awards = batch_awards(batch, lead, model, now)
    active, _ = batch._sync(lead, model, awards)
    # After the sync the lead's active entries are exactly these awards.
    given: dict[int, float] = {}
    for award in awards:
        given[award.rule_id] = given.get(award.rule_id, 0.0) + award.points
    for rule_id, points in given.items():
        found = reach.setdefault(rule_id, RuleReach())
        found.leads += 1
        found.points += points
    return batch._state(lead, model, active, result).score


def _tally(
    tallies: VersionTallies,
    lead: Lead,
    scores: tuple[int, int, int | None],
    live: CompiledModel,
    outcome: tuple[str, datetime] | None,
    since: datetime,
) -> None:
    """Count a lead with its ``scores``: (live rule score, candidate rule score,
    predictive score)."""
    live_score, score, predictive = scores
    tallies.scored += 1
    tallies.live_scores[(live_score, predictive)] += 1
    tallies.candidate_scores[(score, predictive)] += 1
    if lead.created_at >= since:
        tallies.recent[scores] += 1
    if outcome is not None:
        status, closed_at = outcome
        won = status == "won"
        tallies.closed.append(ClosedLead(live_score, score, won, closed_at, predictive))
        return
    decided = decision_score(live_score, predictive, live.thresholds)
    live_band = band_for(decided, live.thresholds)
    tallies.open_leads[(lead.stage, live_band, score, predictive)] += 1


def lead_outcomes() -> dict[int, tuple[str, datetime]]:
    """Won (and when) for leads with a won deal; lost (and when the last deal was lost)
    for leads whose deals were all lost."""
    outcomes: dict[int, tuple[str, datetime]] = {}
    deals = Deal.objects.exclude(status="open").order_by("closed_at", "pk")
    for lead_id, status, closed_at, created_at in deals.values_list(
        "lead_id", "status", "closed_at", "created_at"
    ):
        known = outcomes.get(lead_id)
        if known is not None and known[0] == "won" and status != "won":
            continue
        outcomes[lead_id] = (status, closed_at or created_at)
    return outcomes


@dataclass(frozen=True)
class VersionThresholds:
    """The thresholds a preview applies to a version's scores (the candidate's own, or
    an edit being tried before it is saved), and the score they read."""

    mql: int
    sql: int
    hot: int
    warm: int
    # A base score tried in place of the saved one: every score moves by the difference,
    # up to the model's maximum (a score held at the maximum is taken to be at it).
    base_shift: int = 0
    max_points: int | None = None
    # The score bands and thresholds read (``ScoringModel.decide_on``, ``predictive_share``).
    decide_on: str = RULES
    predictive_share: int = 50

    @classmethod
    def of(cls, model: ScoringModel) -> VersionThresholds:
        return cls(
            model.mql_threshold,
            model.sql_threshold,
            model.hot_from,
            model.warm_from,
            decide_on=model.decide_on,
            predictive_share=model.predictive_share,
        )

    def score(self, saved: int) -> int:
        """A rule score of the saved version as it would be with the tried base score."""
        if not self.base_shift:
            return saved
        shifted = saved + self.base_shift
        return shifted if self.max_points is None else min(shifted, self.max_points)

    def decided(self, scored: Scored) -> int:
        """The score bands and thresholds read for a lead the saved version scores
        (rule score, predictive score) ``scored``: the decision on the rule score with
        the tried base score (``score_formula.decision_score``)."""
        saved, predictive = scored
        basis = Thresholds(decide_on=self.decide_on, predictive_share=self.predictive_share)
        return decision_score(self.score(saved), predictive, basis)

    @property
    def score_name(self) -> str:
        """The score read, in words: "Score", "Predictive score" or "Blended score"."""
        return DECISION_NAMES[self.decide_on]

    @property
    def basis_text(self) -> str:
        """The score read, in a phrase ("the rule score", "a blend of …")."""
        if self.decide_on == RULES:
            return "the rule score"
        if self.decide_on == PREDICTIVE:
            return "the predictive score"
        share = self.predictive_share
        return f"a blend of {100 - share}% rule score and {share}% predictive score"

    def band(self, score: int) -> str:
        return band_for(score, Thresholds(hot=self.hot, warm=self.warm))

    def handoff(self) -> int:
        return self.sql if settings.HANDOFF_STAGE == Stage.SQL else self.mql

    def moves(self, stage: str, score: int) -> str | None:
        """The stage a lead in ``stage`` scoring ``score`` would move to, if any
        (forward only, from the stages scoring qualifies from)."""
        if stage not in AUTO_QUALIFIABLE:
            return None
        if score >= self.sql:
            return Stage.SQL if stage != Stage.SQL else None
        if score >= self.mql and stage in (Stage.NEW, Stage.RECYCLED):
            return Stage.MQL
        return None


@dataclass(frozen=True)
class Separation:
    """How one version's scores separate won from lost leads."""

    bands: list[Group]
    deciles: list[Group]
    auc: float | None
    top_decile_lift: float | None
    hot_lift: float | None


@dataclass(frozen=True)
class TimeSplit:
    """The closed leads cut at ``at``: the ROC AUC of each version on the older half (what
    a marketer tuned against) and on the newer half (how it holds on later outcomes)."""

    at: datetime | None
    older: int
    newer: int
    older_auc: tuple[float | None, float | None]
    newer_auc: tuple[float | None, float | None]


@dataclass(frozen=True)
class VersionPreview:
    """Every figure of a candidate version against the live one, on the same leads."""

    live: ScoringModel
    candidate: ScoringModel
    thresholds: VersionThresholds
    scored: int
    at: datetime | None
    histogram: list[Bin]
    band_changes: int
    to_mql: int
    to_sql: int
    handoffs_now: int
    handoffs_per_week: tuple[float, float]
    closed: int
    won: int
    separation: tuple[Separation, Separation]
    split: TimeSplit
    rules: dict[int, RuleReach]

    @property
    def stage_changes(self) -> int:
        return self.to_mql + self.to_sql

    @property
    def live_thresholds(self) -> VersionThresholds:
        return VersionThresholds.of(self.live)

    @property
    def reads_predictive(self) -> bool:
        """Whether either version decides on the predictive score (or a blend)."""
        return self.live.decide_on != RULES or self.thresholds.decide_on != RULES

    def figures(self) -> dict[str, Any]:
        """The headline figures as JSON values, to keep with a publication."""
        live, candidate = self.separation
        return {
            "scored": self.scored,
            "closed": self.closed,
            "won": self.won,
            "auc": [live.auc, candidate.auc],
            "top_decile_lift": [live.top_decile_lift, candidate.top_decile_lift],
            "hot_conversion": [live.bands[0].conversion, candidate.bands[0].conversion],
            "band_changes": self.band_changes,
            "stage_changes": self.stage_changes,
            "handoffs_now": self.handoffs_now,
            "handoffs_per_week": list(self.handoffs_per_week),
            "thresholds": {"mql": self.thresholds.mql, "sql": self.thresholds.sql},
            "at": self.at.isoformat() if self.at else None,
        }


def version_preview(
    *, candidate: ScoringModel, thresholds: VersionThresholds | None = None
) -> VersionPreview:
    """The candidate version against the live one it would replace, over the same leads:
    the score histogram of both, how many open leads would change band and stage and
    be handed off (now, and a week from new leads), conversion by band and decile, ROC
    AUC and lift on closed leads, with a time split. ``thresholds`` tries thresholds
    other than the candidate's before they are saved. Saves nothing; raises
    ``PreviewError`` for a model that is not a draft version of a live model."""
    tallies = version_tallies(candidate=candidate)
    live = _live_version(candidate)
    mine = thresholds or VersionThresholds.of(candidate)
    theirs = VersionThresholds.of(live)
    band_changes, moved = 0, Counter[str]()
    for (stage, live_band, saved, predictive), n in tallies.open_leads.items():
        score = mine.decided((saved, predictive))
        band_changes += n * (mine.band(score) != live_band)
        target = mine.moves(stage, score)
        if target is not None:
            moved[target] += n
    handoff_stage = settings.HANDOFF_STAGE
    return VersionPreview(
        live=live,
        candidate=candidate,
        thresholds=mine,
        scored=tallies.scored,
        at=tallies.at,
        histogram=histogram(
            [theirs.decided(scored) for scored in tallies.live_scores.elements()],
            [mine.decided(scored) for scored in tallies.candidate_scores.elements()],
        ),
        band_changes=band_changes,
        to_mql=moved[Stage.MQL],
        to_sql=moved[Stage.SQL],
        handoffs_now=moved[handoff_stage] + (moved[Stage.SQL] if handoff_stage == Stage.MQL else 0),
        handoffs_per_week=(
            _per_week(tallies, 0, theirs.handoff(), theirs),
            _per_week(tallies, 1, mine.handoff(), mine),
        ),
        closed=len(tallies.closed),
        won=sum(lead.won for lead in tallies.closed),
        separation=(
            _separation(_decided(tallies.closed, 0, theirs), theirs),
            _separation(_decided(tallies.closed, 1, mine), mine),
        ),
        split=_time_split(tallies.closed, theirs, mine),
        rules=tallies.rules[candidate.pk],
    )


def _per_week(
    tallies: VersionTallies, which: int, threshold: int, decides: VersionThresholds
) -> float:
    """Leads created in the last ``RECENT_DAYS`` that version ``which`` (0 the live one, 1
    the candidate) puts at or past the hand-off threshold, a week, on the score that
    ``decides`` (with its base score tried) says the version decides on."""
    reached = sum(
        n
        for (live, candidate, predictive), n in tallies.recent.items()
        if decides.decided(((live, candidate)[which], predictive)) >= threshold
    )
    return reached * 7 / RECENT_DAYS


def _decided(
    closed: list[ClosedLead], which: int, decides: VersionThresholds
) -> list[tuple[int, bool]]:
    """Each closed lead's score that version ``which`` (0 the live one, 1 the candidate)
    decides on, by ``decides``, and whether it was won."""
    return [(decides.decided(((c.live, c.candidate)[which], c.predictive)), c.won) for c in closed]


def _separation(scored: Sequence[tuple[float, bool]], thresholds: VersionThresholds) -> Separation:
    won = sum(is_won for _, is_won in scored)
    bands = []
    for band in ("hot", "warm", "cold"):
        part = [is_won for score, is_won in scored if thresholds.band(int(score)) == band]
        bands.append(Group(label=band, won=sum(part), closed=len(part)))
    tiles = deciles(scored)
    top = tiles[0] if tiles else None
    return Separation(
        bands=bands,
        deciles=tiles,
        auc=roc_auc(scored),
        top_decile_lift=lift(top.won, top.closed, won, len(scored)) if top else None,
        hot_lift=lift(bands[0].won, bands[0].closed, won, len(scored)),
    )


def _halves(closed: list[ClosedLead]) -> tuple[list[ClosedLead], list[ClosedLead]]:
    """The closed leads, older half and newer half by the time they closed."""
    ordered = sorted(closed, key=lambda lead: lead.closed_at)
    half = len(ordered) // 2
    return ordered[:half], ordered[half:]


def _time_split(
    closed: list[ClosedLead], theirs: VersionThresholds, mine: VersionThresholds
) -> TimeSplit:
    older, newer = _halves(closed)

    def aucs(part: list[ClosedLead]) -> tuple[float | None, float | None]:
        return roc_auc(_decided(part, 0, theirs)), roc_auc(_decided(part, 1, mine))

    return TimeSplit(
        at=newer[0].closed_at if older and newer else None,
        older=len(older),
        newer=len(newer),
        older_auc=aucs(older),
        newer_auc=aucs(newer),
    )


# The shares of won leads the threshold hint gives the score floor of.
HINT_SHARES = (90, 75, 50)


@dataclass(frozen=True)
class ThresholdSide:
    """One set of thresholds on the candidate's scores: the newer closed leads by band and
    by the stage the score reaches, and the hand-offs a week from new leads."""

    label: str
    thresholds: VersionThresholds
    bands: list[Group]
    stages: list[Group]
    handoffs_per_week: float


@dataclass(frozen=True)
class ThresholdComparison:
    """The live version's thresholds and tried ones side by side, on the candidate's
    scores of the newer half of the closed leads (those that closed since ``since``),
    with the threshold hint: the lowest score a won lead has, and the score at or above
    which each share of ``HINT_SHARES`` of the won leads sit."""

    since: datetime | None
    newer: int
    sides: tuple[ThresholdSide, ThresholdSide]
    lowest_won: float | None
    won_floors: list[tuple[int, float | None]]

    def rows(self) -> list[tuple[str, Group, Group]]:
        """Each band, then each stage reached: (what, the live side's, the tried side's)."""
        live, mine = self.sides
        bands = [
            (f"{a.label.capitalize()} band", a, b)
            for a, b in zip(live.bands, mine.bands, strict=True)
        ]
        stages = [(a.label, a, b) for a, b in zip(live.stages, mine.stages, strict=True)]
        return bands + stages


def threshold_comparison(
    *, candidate: ScoringModel, thresholds: VersionThresholds | None = None
) -> ThresholdComparison:
    """The live version's thresholds and ``thresholds`` (the candidate's own by default)
    side by side on the candidate's scores, checked on newer outcomes (the older half
    is what they were tuned on). Saves nothing; raises ``PreviewError`` as
    ``version_preview`` does."""
    tallies = version_tallies(candidate=candidate)
    live = _live_version(candidate)
    mine = thresholds or VersionThresholds.of(candidate)
    theirs = VersionThresholds.of(live)
    older, newer = _halves(tallies.closed)
    scored = _decided(newer, 1, mine)
    every = _decided(tallies.closed, 1, mine)
    sides = (
        _side(f"Live thresholds of {live}", theirs, scored, tallies, mine),
        _side("These thresholds", mine, scored, tallies, mine),
    )
    return ThresholdComparison(
        since=newer[0].closed_at if older and newer else None,
        newer=len(newer),
        sides=sides,
        lowest_won=lowest_won(every),
        won_floors=[(share, won_share_floor(every, share / 100)) for share in HINT_SHARES],
    )


def _side(
    label: str,
    thresholds: VersionThresholds,
    scored: list[tuple[int, bool]],
    tallies: VersionTallies,
    tried: VersionThresholds,
) -> ThresholdSide:
    def group(name: str, test: Any) -> Group:
        part = [is_won for score, is_won in scored if test(score)]
        return Group(label=name, won=sum(part), closed=len(part))

    t = thresholds
    return ThresholdSide(
        label=label,
        thresholds=t,
        bands=[group(band, lambda s, b=band: t.band(s) == b) for band in ("hot", "warm", "cold")],
        stages=[
            group("SQL", lambda s: s >= t.sql),
            group("MQL", lambda s: t.mql <= s < t.sql),
            group("Below MQL", lambda s: s < t.mql),
        ],
        handoffs_per_week=_per_week(tallies, 1, t.handoff(), tried),
    )
