"""Scoring leads whose history was written in bulk (an import, or its undo) once, at the
end, without reacting to what their new scores cross.

Real-time scoring moves a lead to MQL or SQL when its score crosses a threshold, and
announces band changes and surges, so that hand-offs, owner alerts and nurture tracks
follow. For history brought in from a spreadsheet or an old CRM none of that is news:
a lead that was hot three years ago must not be handed to a rep today. So these leads
are scored like any other (every activity at its own time, with decay) and nothing
reacts to them.

On PostgreSQL the leads are scored set-based, in the lead-id ranges that hold them
(``scoring.bulk``), model by model, as a rescore job does. Other leads in those ranges
are rescored too (a range is one statement); any change that brings them, such as
activities that arrived meanwhile, is reacted to as a rescore job would. Elsewhere the
leads are scored in chunks through ``leads_score``.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .bulk import refresh_statistics, rescore_range
from .lead_scoring import leads_score
from .lead_sets import CHUNK_SIZE, chunks
from .models import ScoringModel
from .rescore_jobs import range_react
from .ruleset import Ruleset, load_ruleset


def leads_rescore_quietly(*, lead_ids: Iterable[int], chunk_size: int = CHUNK_SIZE) -> int:
    """Bring the leads' ledgers and scores up to date with the active rules, with no
    stage move, hand-off, alert or nurture reaction for them; how many leads were given.

    Call it outside a transaction: each range or chunk is a transaction of its own with
    its leads locked, so real-time scoring meanwhile waits or runs on top. Idempotent.
    """
    quiet = sorted(set(lead_ids))
    if not quiet:
        return 0
    ruleset = load_ruleset(fresh=True)
    if connection.vendor == "postgresql":
        _rescore_ranges(quiet, ruleset)
    else:
        for chunk in chunks(quiet, chunk_size):
            leads_score(lead_ids=chunk, ruleset=ruleset, react=False)
    return len(quiet)


def quiet_ranges(lead_ids: list[int], size: int) -> list[tuple[int, int]]:
    """The aligned id ranges of ``size`` that hold ``lead_ids``, in order."""
    starts = sorted({lead_id // size * size for lead_id in lead_ids})
    return [(lo, lo + size - 1) for lo in starts]


def _rescore_ranges(quiet: list[int], ruleset: Ruleset) -> None:
    quiet_set = set(quiet)
    segments = {
        model.pk: list(model.segment_product_lines.values_list("pk", flat=True))
        for model in ScoringModel.objects.filter(pk__in=[m.id for m in ruleset.models])
    }
    for lo, hi in quiet_ranges(quiet, settings.SCORING_RESCORE_RANGE):
        for model in ruleset.models:
            refresh_statistics()
            with transaction.atomic():
                result = rescore_range(
                    model=model,
                    segment_ids=segments.get(model.id, []),
                    lo=lo,
                    hi=hi,
                    now=timezone.now(),
                )
                range_react(result=result, model=model, ruleset=ruleset, quiet=quiet_set)
