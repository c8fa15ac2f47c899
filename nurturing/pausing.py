"""Pausing and resuming sequences: one service each, for every surface.

A paused sequence keeps its enrollments in place; beat claims none of its steps and a
message already queued waits, unsent, until the sequence is resumed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from django.db import transaction

from .models import Message, MessageStatus, Sequence, SequenceStatus
from .sending import messages_send_request


def sequences_pause(*, sequence_ids: Iterable[int]) -> int:
    """Pause the active sequences among ``sequence_ids``; how many were paused.

    Their enrollments keep their place and their steps wait: beat claims no step of a
    paused sequence, and a message already queued stays queued, unsent, until
    ``sequences_resume``.
    """
    return Sequence.objects.filter(pk__in=list(sequence_ids), status=SequenceStatus.ACTIVE).update(
        status=SequenceStatus.PAUSED
    )


def sequences_resume(*, sequence_ids: Iterable[int]) -> int:
    """Resume the paused sequences among ``sequence_ids``; how many were resumed.

    Steps that fell due meanwhile run at beat's next pass (the send window and the
    frequency cap still hold); the messages held back are queued for sending once
    this commits.
    """
    with transaction.atomic():
        paused = list(
            Sequence.objects.select_for_update()
            .filter(pk__in=list(sequence_ids), status=SequenceStatus.PAUSED)
            .values_list("pk", flat=True)
        )
        Sequence.objects.filter(pk__in=paused).update(status=SequenceStatus.ACTIVE)
        held = list(
            Message.objects.filter(
                enrollment__sequence_id__in=paused,
                status=MessageStatus.QUEUED,
                claimed_at__isnull=True,
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if held:
            transaction.on_commit(partial(messages_send_request, message_ids=held))
    return len(paused)
