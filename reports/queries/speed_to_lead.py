"""The speed to lead and reps report's reads: per rep and per team, hand-offs, hours
to the first touch, SLA breaches, acceptance, quality ratings, pipeline and wins; and
why hand-offs were rejected."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import Count, F, Q, Sum, Value
from django.utils import timezone

from crm.models import Team, User
from leads.handoff_models import HandOffStatus, Rating
from leads.models import Deal, DealStatus, LeadRating
from reports import stats
from reports.queries.lead_facts import HOUR, scope_handoffs
from reports.scope import ReportScope
from reports.sql import EpochSeconds, percentiles_by_group, queryset_sql


def speed_source(scope: ReportScope, group: str | None) -> tuple[str, tuple[Any, ...]]:
    """SQL of (grp, seconds to first touch) over the scope's touched hand-offs, grouped
    by the ORM path ``group`` (None: all in one group, "all")."""
    source = (
        scope_handoffs(scope)
        .filter(first_touch_at__isnull=False)
        .order_by()
        .values(
            grp=F(group) if group else Value("all"),
            val=EpochSeconds("first_touch_at", "created_at"),
        )
    )
    return queryset_sql(source)


def _breach(now: dt.datetime) -> Q:
    """Past the SLA: escalated, touched after it was due, or untouched and overdue."""
    return (
        Q(escalated_at__isnull=False)
        | Q(first_touch_at__gt=F("sla_due_at"))
        | Q(first_touch_at__isnull=True, sla_due_at__lt=now)
    )


def speed_rows(scope: ReportScope, *, by_team: bool = False) -> list[dict[str, Any]]:
    """Per rep (or team): hand-offs, touched, median and p90 hours to the first touch,
    SLA breaches, accepted, rejected, quality ratings, open pipeline and wins."""
    reps, teams = speed_tables(scope)
    return teams if by_team else reps


def speed_tables(scope: ReportScope) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``speed_rows`` per rep and per team, from one pass over each table:
    the counts and sums per person add up to their team's (the team of a hand-off's or
    a deal's owner, of a rating's author); only the percentiles are read per team."""
    now = timezone.now()
    handoffs = list(
        scope_handoffs(scope)
        .order_by()
        .values(grp=F("owner_id"))
        .annotate(
            handoffs=Count("pk"),
            touched=Count("pk", filter=Q(first_touch_at__isnull=False)),
            breaches=Count("pk", filter=_breach(now)),
            accepted=Count("pk", filter=Q(status=HandOffStatus.ACCEPTED)),
            rejected=Count("pk", filter=Q(status=HandOffStatus.REJECTED)),
        )
    )
    speed = percentiles_by_group(*speed_source(scope, "owner_id"), fractions=[0.5, 0.9])
    team_speed = percentiles_by_group(*speed_source(scope, "owner__team_id"), fractions=[0.5, 0.9])
    ratings = list(
        LeadRating.objects.filter(lead__in=scope.lead_ids)
        .order_by()
        .values(grp=F("by_id"))
        .annotate(
            good=Count("pk", filter=Q(rating=Rating.GOOD)),
            not_fit=Count("pk", filter=Q(rating=Rating.NOT_FIT)),
        )
    )
    deals = list(
        Deal.objects.filter(lead__in=scope.lead_ids)
        .order_by()
        .values(grp=F("lead__owner_id"))
        .annotate(
            pipeline=Sum("amount", filter=Q(status=DealStatus.OPEN)),
            won_deals=Count("pk", filter=Q(status=DealStatus.WON)),
            won_amount=Sum("amount", filter=Q(status=DealStatus.WON)),
        )
    )
    people = [row["grp"] for rows in (handoffs, ratings, deals) for row in rows]
    users = {user.pk: user for user in User.objects.filter(pk__in=[p for p in people if p])}
    team_of = {pk: user.team_id for pk, user in users.items()}
    per_team = [_by_team(rows, team_of) for rows in (handoffs, ratings, deals)]
    wanted = {row["grp"] for rows in per_team for row in rows} | set(team_speed)
    teams = {team.pk: team.name for team in Team.objects.filter(pk__in=[t for t in wanted if t])}
    reps = _merge_people(
        handoffs, speed, ratings, deals, names={pk: str(u) for pk, u in users.items()}
    )
    team_handoffs, team_ratings, team_deals = per_team
    return reps, _merge_people(
        team_handoffs, team_speed, team_ratings, team_deals, names=teams, teams=True
    )


def _by_team(rows: Sequence[Mapping[str, Any]], team_of: dict[Any, Any]) -> list[dict[str, Any]]:
    """Per-person rows added up per team (None: no owner or no team)."""
    totals: dict[Any, dict[str, Any]] = {}
    for row in rows:
        team = team_of.get(row["grp"])
        found = totals.setdefault(team, {"grp": team})
        for key, value in row.items():
            if key != "grp" and value is not None:
                found[key] = (found.get(key) or 0) + value
            elif key != "grp":
                found.setdefault(key, None)
    return list(totals.values())


def _merge_people(
    handoffs: Any,
    speed: dict[Any, Any],
    ratings: Any,
    deals: Any,
    *,
    names: dict[Any, str],
    teams: bool = False,
) -> list[dict[str, Any]]:
    """One row per person or team from the four per-group aggregates."""
    merged: dict[Any, dict[str, Any]] = {}
    blank = {
        "handoffs": 0,
        "touched": 0,
        "breaches": 0,
        "accepted": 0,
        "rejected": 0,
        "good": 0,
        "not_fit": 0,
        "pipeline": None,
        "won_deals": 0,
        "won_amount": None,
    }
    for source in (handoffs, ratings, deals):
        for row in source:
            merged.setdefault(row["grp"], dict(blank)).update(
                {k: v for k, v in row.items() if k != "grp"}
            )
    for grp, (_, (median, p90)) in speed.items():
        row = merged.setdefault(grp, dict(blank))
        row["median_hours"] = None if median is None else median / HOUR
        row["p90_hours"] = None if p90 is None else p90 / HOUR
    rows = []
    for grp, row in merged.items():
        decided = row["accepted"] + row["rejected"]
        rows.append(
            {
                "name": names.get(grp, "(no team)" if teams else "(unassigned)"),
                "handoffs": row["handoffs"],
                "touched": row["touched"],
                "median_hours": row.get("median_hours"),
                "p90_hours": row.get("p90_hours"),
                "breaches": row["breaches"],
                "accepted": row["accepted"],
                "rejected": row["rejected"],
                "acceptance": stats.ratio(row["accepted"], decided),
                "good": row["good"],
                "not_fit": row["not_fit"],
                "pipeline": float(row["pipeline"] or 0),
                "won_deals": row["won_deals"],
                "won_amount": float(row["won_amount"] or 0),
            }
        )
    return sorted(rows, key=lambda r: (-r["handoffs"], r["name"]))


def reject_reasons(scope: ReportScope) -> list[dict[str, Any]]:
    """Why reps rejected hand-offs, most frequent first."""
    rows = (
        scope_handoffs(scope)
        .filter(status=HandOffStatus.REJECTED)
        .order_by()
        .values("reject_reason")
        .annotate(handoffs=Count("pk"))
        .order_by("-handoffs", "reject_reason")[:50]
    )
    return [{"reason": row["reject_reason"], "handoffs": row["handoffs"]} for row in rows]
