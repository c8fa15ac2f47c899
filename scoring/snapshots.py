"""The nightly score snapshots the score trend (``scoring.trend``) reads, and the reads.

``scores_snapshot`` runs after the nightly decay (``scoring.tasks.decay_scores``), so it
records the scores as the decay left them. It writes a row for each lead whose score
differs from its latest snapshot (every lead, the first night) and prunes the rows no
trend reads any more: those older than the trend's day that a later row on or before
that day supersedes. A lead keeps at most ``TREND_DAYS + 1`` rows.

Why snapshots rather than the ledger: the score on a past day follows from the ledger,
but summing it costs what the lead's entries number. The hottest leads, which the list
shows first, hold thousands of entries each; for a page of 50 such leads the set-based
sum through the (lead, model, at) index took 40 to 300 ms at 1,000 to 5,000 entries a
lead, and the score as it was shown then (entries written by then, ``created_at``, out
of the index) 100 ms to 1 s. The snapshot is one index probe per row: under a
millisecond for the page, whatever the leads' histories.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import IntegerField, OuterRef, Subquery
from django.utils import timezone

from leads.models import Lead

from .lead_sets import lead_id_ranges
from .models import ScoreSnapshot
from .trend import TREND_DAYS, Trend, score_trend

# Each lead whose score (its rank's copy, a narrow row) differs from its latest
# snapshot's, or that has none; run again the same day, it corrects that day's row.
_SNAPSHOT_SQL = """
    INSERT INTO scoring_scoresnapshot (lead_id, day, score)
    SELECT r.lead_id, %(day)s, r.score FROM leads_leadrank r
    WHERE r.lead_id BETWEEN %(lo)s AND %(hi)s
      AND r.score {distinct} (
          SELECT s.score FROM scoring_scoresnapshot s
          WHERE s.lead_id = r.lead_id ORDER BY s.day DESC LIMIT 1)
    ON CONFLICT (lead_id, day) DO UPDATE SET score = excluded.score
"""
_PRUNE_SQL = """
    DELETE FROM scoring_scoresnapshot
    WHERE lead_id BETWEEN %(lo)s AND %(hi)s AND day < %(cutoff)s
      AND EXISTS (
          SELECT 1 FROM scoring_scoresnapshot n
          WHERE n.lead_id = scoring_scoresnapshot.lead_id
            AND n.day > scoring_scoresnapshot.day AND n.day <= %(cutoff)s)
"""


def snapshot_day(now: datetime) -> date:
    """The day (UTC) a snapshot taken at ``now`` is dated."""
    return now.astimezone(UTC).date()


def trend_day(now: datetime) -> date:
    """The day whose snapshot holds the score the trend at ``now`` compares with."""
    return snapshot_day(now) - timedelta(days=TREND_DAYS)


def scores_snapshot(*, now: datetime | None = None) -> int:
    """Record every lead's score at ``now`` where it changed, range after range of
    ``SCORING_DECAY_RANGE`` lead ids, each in a transaction of its own, and prune what no
    trend reads any more. Returns the number of rows written."""
    now = now or timezone.now()
    postgres = connection.vendor == "postgresql"
    day, cutoff = snapshot_day(now), trend_day(now)
    params: dict[str, Any] = {
        "day": day if postgres else day.isoformat(),
        "cutoff": cutoff if postgres else cutoff.isoformat(),
    }
    insert = _SNAPSHOT_SQL.format(distinct="IS DISTINCT FROM" if postgres else "IS NOT")
    written = 0
    for lo, hi in lead_id_ranges(settings.SCORING_DECAY_RANGE):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(insert, {**params, "lo": lo, "hi": hi})
            written += cursor.rowcount
            cursor.execute(_PRUNE_SQL, {**params, "lo": lo, "hi": hi})
    return written


def score_before(now: datetime, lead: str = "pk") -> Subquery:
    """The lead's score at the trend's day, ``None`` without one: a subquery of the row's
    ``lead`` column, for the one query of a list page (one index probe a row)."""
    snapshots = ScoreSnapshot.objects.filter(lead=OuterRef(lead), day__lte=trend_day(now))
    return Subquery(
        snapshots.order_by("-day").values("score")[:1], output_field=IntegerField(null=True)
    )


def scores_before(*, lead_ids: list[int], now: datetime) -> dict[int, int | None]:
    """Each lead's score at the trend's day (``None``: none), in one query."""
    rows = Lead.objects.filter(pk__in=lead_ids).annotate(before=score_before(now))
    return dict(rows.order_by().values_list("pk", "before"))


def lead_score_trend(*, lead: Lead, now: datetime | None = None) -> tuple[Trend, int | None]:
    """The lead's score trend, and its score at the trend's day."""
    before = scores_before(lead_ids=[lead.pk], now=now or timezone.now()).get(lead.pk)
    return score_trend(lead.score, before), before
