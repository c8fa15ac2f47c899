"""Nurturing's part in merging leads (``leads.merge_participants``): enrollments and
their messages move to the surviving lead, and move back on an undo.

A lead walks a sequence once at a time (``enrollment_one_active_per_lead_sequence``):
when the survivor and a merged lead both walk one, the merged lead's enrollment ends
(``ExitReason.MERGED``) and its queued messages are cancelled, so the person gets each
email once. The undo puts those enrollments and messages back as they were. Messages
follow their enrollment's lead.
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from django.db import transaction

from leads.merge_participants import MergeParticipant, MergeRecord

from .enrollment import lead_sync_request
from .models import Enrollment, EnrollmentStatus, ExitReason, Message, MessageStatus

ENDED_FIELDS = ("status", "exit_reason", "ended_at", "next_due_at")


def enrollments_merge(*, survivor_id: int, other_ids: list[int], now: dt.datetime) -> MergeRecord:
    """Move the others' enrollments and messages to the survivor (module docstring)."""
    enrollments = Enrollment.objects.filter(lead_id__in=other_ids)
    moved: dict[str, list[int]] = {}
    for pk, lead_id in enrollments.order_by("pk").values_list("pk", "lead_id"):
        moved.setdefault(str(lead_id), []).append(pk)
    ended, cancelled = _end_doubles(survivor_id, other_ids, now)
    Message.objects.filter(lead_id__in=other_ids).update(lead_id=survivor_id)
    enrollments.update(lead_id=survivor_id)
    return {"enrollments": moved, "ended": ended, "cancelled": cancelled}


def _end_doubles(
    survivor_id: int, other_ids: list[int], now: dt.datetime
) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """End the others' active enrollments in sequences the survivor (or an earlier of
    the others) walks already; their state before, and the messages cancelled."""
    walking = set(
        Enrollment.objects.active()
        .filter(lead_id=survivor_id)
        .values_list("sequence_id", flat=True)
    )
    ended: dict[str, dict[str, Any]] = {}
    for enrollment in Enrollment.objects.active().filter(lead_id__in=other_ids).order_by("pk"):
        if enrollment.sequence_id not in walking:
            walking.add(enrollment.sequence_id)
            continue
        ended[str(enrollment.pk)] = {
            name: getattr(enrollment, name).isoformat()
            if isinstance(getattr(enrollment, name), dt.datetime)
            else getattr(enrollment, name)
            for name in ENDED_FIELDS
        }
        enrollment.save(update_fields=enrollment.end(reason=ExitReason.MERGED, now=now))
    queued = Message.objects.filter(
        enrollment_id__in=[int(pk) for pk in ended],
        status=MessageStatus.QUEUED,
        claimed_at__isnull=True,
    )
    cancelled = list(queued.values_list("pk", flat=True))
    queued.update(status=MessageStatus.CANCELLED)
    return ended, cancelled


def enrollments_unmerge(*, survivor_id: int, record: MergeRecord, now: dt.datetime) -> None:
    """Move the enrollments back, and resume the ones the merge ended."""
    for lead_id, ids in record.get("enrollments", {}).items():
        Enrollment.objects.filter(pk__in=ids, lead_id=survivor_id).update(lead_id=int(lead_id))
        Message.objects.filter(enrollment_id__in=ids).update(lead_id=int(lead_id))
    for pk, before in record.get("ended", {}).items():
        Enrollment.objects.filter(pk=int(pk), exit_reason=ExitReason.MERGED).update(
            status=before["status"] or EnrollmentStatus.ACTIVE,
            exit_reason=before["exit_reason"],
            ended_at=before["ended_at"],
            next_due_at=before["next_due_at"],
        )
    Message.objects.filter(
        pk__in=record.get("cancelled", []), status=MessageStatus.CANCELLED
    ).update(status=MessageStatus.QUEUED)


def tracks_sync(*, lead_ids: list[int], now: dt.datetime) -> None:
    """Let the leads find their tracks again once the merge or undo commits."""
    for lead_id in lead_ids:
        transaction.on_commit(partial(lead_sync_request, lead_id=lead_id), robust=True)


ENROLLMENT_PARTICIPANT = MergeParticipant(
    name="nurturing", move=enrollments_merge, restore=enrollments_unmerge, settle=tracks_sync
)
