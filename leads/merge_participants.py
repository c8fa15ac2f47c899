"""The apps above ``leads`` that own rows of a lead and move them in a merge.

``leads`` cannot import scoring or nurturing, yet a merge must move the score ledger
and the nurture enrollments in the same transaction as the lead's own rows. Each such
app registers one ``MergeParticipant`` in its ``AppConfig.ready()``; the merge and its
undo (``leads.merging``) call every participant in registration order, inside their
transaction, with the leads' rows locked:

``move(survivor_id, other_ids, now)``
    Move the app's rows of ``other_ids`` to the survivor, before those leads' rows are
    deleted; return a JSON-able record of what moved (and what was changed to make
    room), which the ``LeadMerge`` keeps under the participant's name.
``restore(survivor_id, record, now)``
    Undo what ``move`` did, from its record; the merged leads' rows exist again.
``settle(lead_ids, now)``
    Bring what the app derives from a lead's rows up to date for these leads, once the
    survivor has its fields and the merged leads are gone (or back): scoring rescores
    them here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MergeRecord = dict[str, Any]


@dataclass(frozen=True)
class MergeParticipant:
    name: str
    move: Callable[..., MergeRecord]
    restore: Callable[..., None]
    settle: Callable[..., None]


_participants: dict[str, MergeParticipant] = {}


def merge_participant_register(participant: MergeParticipant) -> None:
    """Add ``participant`` (or replace the one of that name)."""
    _participants[participant.name] = participant


def merge_participant_unregister(name: str) -> None:
    _participants.pop(name, None)


def merge_participants() -> list[MergeParticipant]:
    return list(_participants.values())


def participants_move(*, survivor_id: int, other_ids: list[int], now: dt.datetime) -> MergeRecord:
    return {
        p.name: p.move(survivor_id=survivor_id, other_ids=other_ids, now=now)
        for p in merge_participants()
    }


def participants_restore(*, survivor_id: int, records: MergeRecord, now: dt.datetime) -> None:
    for participant in reversed(merge_participants()):
        record = records.get(participant.name)
        if record is not None:
            participant.restore(survivor_id=survivor_id, record=record, now=now)


def participants_settle(*, lead_ids: list[int], now: dt.datetime) -> None:
    for participant in merge_participants():
        participant.settle(lead_ids=lead_ids, now=now)
