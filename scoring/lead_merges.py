"""Scoring's part in merging leads (``leads.merge_participants``): the ledger moves with
the leads' history, and the survivor is rescored once.

The ledger is append-only, so a merge moves entries and writes reversals, never edits
points. An award of the merged leads that the survivor holds too (the same rule, the
same activity: fit awards above all, which name no activity) would count twice: it is
reversed at the merge, the survivor's own award kept. What else differs (fit from the
fields the survivor took, caps per lead now counting the merged history together) the
rescore settles, as it settles any change. The merged leads' score rows go with their
lead rows; the rescore writes the survivor's.

An undo moves back the merged leads' entries without an activity (fit and manual
adjustments) by id, and every entry about their activities, written before the merge
or since, with the reversals of those entries; then each lead is rescored from its own
history again.
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q

from leads.merge_participants import MergeParticipant, MergeRecord
from leads.models import Activity

from .lead_scoring import leads_score
from .models import EntryKind, ScoreEntry, ScoringModel
from .outbox import leads_rescore_request, profile_rescores_record
from .revaluations import AWARD_FIELDS, stored_effective
from .state import entry_value


def ledger_merge(*, survivor_id: int, other_ids: list[int], now: dt.datetime) -> MergeRecord:
    """Move the others' ledger to the survivor, reversing the awards it holds already;
    the record names the merged leads and their entries without an activity."""
    entries = ScoreEntry.objects.filter(lead_id__in=other_ids)
    without_activity: dict[str, list[int]] = {}
    for pk, lead_id in (
        entries.filter(activity__isnull=True).order_by("pk").values_list("pk", "lead_id")
    ):
        without_activity.setdefault(str(lead_id), []).append(pk)
    doubled = _doubled_awards(survivor_id, other_ids)
    entries.update(lead_id=survivor_id)
    reversals = _reverse(doubled, survivor_id, now, "Merged into the lead that holds this award")
    return {"leads": other_ids, "entries": without_activity, "reversals": reversals}


def _active_awards(lead_ids: list[int]) -> list[dict[str, Any]]:
    """The leads' active awards, with their effective points (``scoring.revaluations``)."""
    return stored_effective(
        ScoreEntry.objects.filter(
            lead_id__in=lead_ids,
            kind__in=[EntryKind.FIT, EntryKind.ENGAGEMENT],
            reversal_of__isnull=True,
            reversals__isnull=True,
            revalued_to__isnull=True,
        )
        .order_by("pk")
        .values(*AWARD_FIELDS)
    )


def _doubled_awards(survivor_id: int, other_ids: list[int]) -> list[dict[str, Any]]:
    """The others' active awards whose (model, rule, activity, bonus) the survivor, or an
    earlier of the others, holds already."""
    held = {_key(e) for e in _active_awards([survivor_id])}
    doubled = []
    for entry in _active_awards(other_ids):
        key = _key(entry)
        if key in held:
            doubled.append(entry)
        held.add(key)
    return doubled


def _key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry["model_id"], entry["rule_id"], entry["activity_id"], entry["bonus"])


def _reverse(entries: list[dict[str, Any]], lead_id: int, now: dt.datetime, why: str) -> list[int]:
    half_lives = dict(ScoringModel.objects.values_list("pk", "decay_half_life_days"))
    reversals = ScoreEntry.objects.bulk_create(
        [
            ScoreEntry(
                lead_id=lead_id,
                model_id=entry["model_id"],
                rule_id=entry["rule_id"],
                activity_id=entry["activity_id"],
                kind=entry["kind"],
                bonus=entry["bonus"],
                points=-entry_value(entry, now, half_lives.get(entry["model_id"])),
                reason=f"{why}: reverses entry {entry['id']}"[:300],
                at=now,
                created_at=now,
                reversal_of_id=entry["id"],
            )
            for entry in entries
        ]
    )
    return [entry.pk for entry in reversals]


def ledger_unmerge(*, survivor_id: int, record: MergeRecord, now: dt.datetime) -> None:
    """Move each restored lead's entries back to it (module docstring); its activities
    are back on it already."""
    for other in record.get("leads", []):
        ids = record.get("entries", {}).get(str(other), [])
        activities = Activity.objects.filter(lead_id=other).values("pk")
        back_ids = list(
            ScoreEntry.objects.filter(lead_id=survivor_id)
            .filter(Q(pk__in=ids) | Q(activity_id__in=activities))
            .values_list("pk", flat=True)
        )
        ScoreEntry.objects.filter(
            Q(pk__in=back_ids) | Q(lead_id=survivor_id, reversal_of_id__in=back_ids)
        ).update(lead_id=other)


# Up to this many leads a merge rescores in its own transaction; more (a company's
# people) are recorded as changed and rescored after commit on the bulk queue.
INLINE_RESCORE = 50


def leads_rescore(*, lead_ids: list[int], now: dt.datetime) -> None:
    """Rescore the leads of a merge or an undo once: a few in its transaction (at the
    time ``leads_score`` takes under the locks, as every scoring run does), so the
    survivor's score is right when the merge returns; many (a company merge moving its
    people) after commit, in chunks on the bulk queue, so that the merge holds its locks
    for the move alone. Their ``ProfileRescore`` rows are written in the merge's
    transaction: a broker that cannot be reached delays the rescore, the sweeper does it."""
    if len(lead_ids) <= INLINE_RESCORE:
        leads_score(lead_ids=lead_ids)
        return
    profile_rescores_record(lead_ids=lead_ids)
    transaction.on_commit(partial(leads_rescore_request, lead_ids=list(lead_ids)), robust=True)


LEDGER_PARTICIPANT = MergeParticipant(
    name="scoring", move=ledger_merge, restore=ledger_unmerge, settle=leads_rescore
)
