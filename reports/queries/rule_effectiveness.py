"""The rule effectiveness report's reads: per rule of a scoring model, the leads it
matches (``scoring.models.RuleMatch``, counted per owner and day by the rollup), the
conversion of matched and unmatched closed leads, the lift and a verdict."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import F, Q, QuerySet, Sum

from leads.models import DealOutcome, Lead
from reports import stats
from reports.models import RollupName, RuleMatchCount
from reports.queries.lead_facts import facts_of, fetch_rows
from reports.rollups import rollup_built
from reports.scope import ReportScope
from scoring.models import Rule, RuleMatch, ScoringModel

# Below this many matches in a model, Rule effectiveness counts them per rule during a
# request when their counts were never rolled up: a few hundred milliseconds at most.
LIVE_MATCHES_MAX = 50_000


def _matches_sql() -> str:
    """The (rule, lead) pairs of a model's rules and the leads they match now (one
    ``%s``: the model), kept by the database from the ledger."""
    return f"SELECT rule_id, lead_id FROM {RuleMatch._meta.db_table} WHERE model_id = %s"


def _rule_matches(leads: QuerySet[Lead], model: ScoringModel) -> list[dict[str, Any]]:
    """Per rule: the leads of ``leads`` it matches, and how many of them closed and won."""
    facts, params = facts_of(leads)
    rows = fetch_rows(
        "SELECT pairs.rule_id, COUNT(*), SUM(facts.closed), SUM(facts.won) "
        f"FROM ({_matches_sql()}) pairs JOIN ({facts}) facts ON facts.pk = pairs.lead_id "
        "GROUP BY pairs.rule_id",
        (model.pk, *params),
    )
    return [
        {"rule_id": rule, "matched": n, "closed_in": int(closed or 0), "won_in": int(won or 0)}
        for rule, n, closed, won in rows
    ]


def _totals(leads: QuerySet[Lead]) -> dict[str, int]:
    facts, params = facts_of(leads)
    ((count, closed, won),) = fetch_rows(
        f"SELECT COUNT(*), SUM(closed), SUM(won) FROM ({facts}) facts", params
    )
    return {"leads": count, "closed": int(closed or 0), "won": int(won or 0)}


def _rolled_up_counts(
    scope: ReportScope, leads: QuerySet[Lead], model: ScoringModel
) -> tuple[dict[str, int], dict[int, dict[str, Any]]]:
    """The totals and the per-rule figures of a scope the rollup's counts answer.

    One pass over the leads counts them per owner: the totals, and the owners in view
    (every condition of such a scope goes through the owner). ``matched`` sums the
    rollup's counts over the range's days and those owners. Closed leads are few: their
    matches now are looked up lead by lead, starting from the deals.
    """
    facts, params = facts_of(leads, grp=F("owner_id"))
    per_owner = fetch_rows(
        f"SELECT grp, COUNT(*), SUM(closed), SUM(won) FROM ({facts}) facts GROUP BY grp",
        params,
    )
    totals = {
        "leads": sum(int(n) for _, n, _, _ in per_owner),
        "closed": sum(int(c or 0) for _, _, c, _ in per_owner),
        "won": sum(int(w or 0) for _, _, _, w in per_owner),
    }
    by_rule: dict[int, dict[str, Any]] = {}
    for row in _closed_matches(leads, model):
        by_rule[row["rule_id"]] = {"matched": 0, **row}
    owners = [owner for owner, *_ in per_owner]
    for counted in _matched_by_owner_and_day(scope, model, owners):
        found = by_rule.setdefault(counted["rule_id"], {"matched": 0, "closed_in": 0, "won_in": 0})
        found["matched"] = int(counted["matched"])
    return totals, by_rule


def _closed_matches(leads: QuerySet[Lead], model: ScoringModel) -> list[dict[str, Any]]:
    """Per rule: the closed leads in ``leads`` it matches, and how many of them were won."""
    facts, params = facts_of(leads.filter(deal_outcome__gte=DealOutcome.LOST))
    rows = fetch_rows(
        f"SELECT m.rule_id, COUNT(*), SUM(facts.won) FROM ({facts}) facts "
        f"JOIN {RuleMatch._meta.db_table} m ON m.lead_id = facts.pk AND m.model_id = %s "
        "GROUP BY m.rule_id",
        (*params, model.pk),
    )
    return [
        {"rule_id": rule, "closed_in": int(n), "won_in": int(won or 0)} for rule, n, won in rows
    ]


def _matched_by_owner_and_day(
    scope: ReportScope, model: ScoringModel, owners: list[int | None]
) -> Iterable[Mapping[str, Any]]:
    in_view = Q(owner__in=[owner for owner in owners if owner is not None])
    if None in owners:
        in_view |= Q(owner__isnull=True)
    return (
        RuleMatchCount.objects.filter(
            in_view, model=model, day__gte=scope.first_day, day__lte=scope.last_day
        )
        .order_by()
        .values("rule_id")
        .annotate(matched=Sum("leads"))
    )


def _matches_are_few(model: ScoringModel) -> bool:
    """Whether the model's rules match few enough leads to count them during a request;
    reads at most one match more than the limit."""
    (count,) = fetch_rows(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {RuleMatch._meta.db_table} "
        "WHERE model_id = %s LIMIT %s) matches",
        (model.pk, LIVE_MATCHES_MAX + 1),
    )[0]
    return count <= LIVE_MATCHES_MAX


@dataclass(frozen=True)
class MatchSource:
    """How a rules page counts the leads each rule matched: from the rollup's counts
    built at ``built_at``, from the matches themselves (``live``), or not yet (neither:
    the matches are too many to count during a request and were never rolled up)."""

    built_at: dt.datetime | None = None
    live: bool = False

    @property
    def known(self) -> bool:
        return self.built_at is not None or self.live


def match_source(model: ScoringModel) -> MatchSource:
    """The rollup's counts when they were built; else the matches, when they are few."""
    rollup = rollup_built(RollupName.RULE_MATCHES)
    if rollup is not None:
        return MatchSource(built_at=rollup.built_at)
    return MatchSource(live=_matches_are_few(model))


def rule_rows(
    scope: ReportScope, model: ScoringModel, *, source: MatchSource | None = None
) -> dict[str, Any]:
    """Per rule of ``model``: its points, how many leads it matched, the conversion of
    matched and unmatched closed leads, the lift with its 95 % interval, and a verdict
    (prune, re-weight) with the evidence.

    A lead matches a rule when it holds an award of the rule that was never reversed
    (``scoring.models.RuleMatch``, current in every transaction). A scope of days and
    owners counts the matched leads from the rollup's counts as of their last build
    (``source``, by default ``match_source(model)``); every other figure reads the
    matches now. Without known counts the rules come with their points and no figures.
    """
    source = source or match_source(model)
    leads = _scored_by(scope, model)
    if source.built_at is not None and scope.by_owner_and_day:
        totals, by_rule = _rolled_up_counts(scope, leads, model)
    else:
        totals = _totals(leads)
        by_rule = {}
        if source.known:
            by_rule = {r["rule_id"]: r for r in _rule_matches(leads, model)}
    rules = Rule.objects.filter(model=model).order_by("kind", "-points", "pk")
    rows = [
        _rule_row(rule, by_rule, totals) if source.known else _unknown_rule_row(rule)
        for rule in rules
    ]
    return {"totals": totals, "rules": rows, "source": source}


def _scored_by(scope: ReportScope, model: ScoringModel) -> QuerySet[Lead]:
    """The scope's leads ``model`` scores. The default model scores every lead (as
    ``scoring.lead_sets.segment_lead_ids`` says): its leads are the scope's, without a
    join to the scores of every lead in view, which costs more than the rest of the page
    at a million leads."""
    if scope.model is not None or model.is_default:
        return scope.leads
    return scope.leads.filter(scores__model=model)


def _rule_row(rule: Rule, by_rule: dict[int, Any], totals: dict[str, int]) -> dict[str, Any]:
    found = by_rule.get(rule.pk, {"matched": 0, "closed_in": 0, "won_in": 0})
    closed_out = totals["closed"] - found["closed_in"]
    won_out = totals["won"] - found["won_in"]
    lift = stats.lift_with_interval(found["won_in"], found["closed_in"], won_out, closed_out)
    verdict = stats.rule_verdict(
        points=rule.points,
        matched=found["matched"],
        leads=totals["leads"],
        lift=lift,
        closed_in=found["closed_in"],
        closed_out=closed_out,
    )
    return {
        **_unknown_rule_row(rule),
        "matched": found["matched"],
        "match_share": stats.ratio(found["matched"], totals["leads"]),
        "closed_in": found["closed_in"],
        "conversion_in": stats.ratio(found["won_in"], found["closed_in"]),
        "closed_out": closed_out,
        "conversion_out": stats.ratio(won_out, closed_out),
        "lift": lift.value,
        "lift_low": lift.low,
        "lift_high": lift.high,
        "verdict": verdict.action,
        "evidence": verdict.evidence,
    }


def _unknown_rule_row(rule: Rule) -> dict[str, Any]:
    """A rule with its points and no match figures."""
    return {
        "rule": rule.name,
        "description": rule.describe(),
        "active": rule.active,
        "points": rule.points,
        "matched": None,
        "match_share": None,
        "closed_in": None,
        "conversion_in": None,
        "closed_out": None,
        "conversion_out": None,
        "lift": None,
        "lift_low": None,
        "lift_high": None,
        "verdict": "",
        "evidence": "matches not built yet",
    }
