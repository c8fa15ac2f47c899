"""Enrolling leads in sequences and ending their enrollments.

By hand (the admin, the rep workspace) through ``enrollment_start`` and
``enrollments_start_many``; automatically through ``lead_sync``, queued when a lead's
band, score or stage changes (``nurturing.apps``), and beat's hourly
``sequences_enroll_matching`` for leads whose band never changes. ``enrollment_check``
holds the rules every surface enrolls by: an active sequence, a lead that may be emailed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from crm.resilience import task_enqueue
from leads.models import EmailStatus, Lead

from .models import (
    AutoEnrollHold,
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    ExitReason,
    Sequence,
    Step,
    Suppression,
)

if TYPE_CHECKING:
    from crm.models import User


# Leads enrolled per transaction of a bulk enrollment.
BATCH = 500
# Exits after which the hourly sweep and track switching may enroll the lead again.
REENTRY_REASONS = (ExitReason.TRACK, ExitReason.STAGE)


class EnrollmentError(ValidationError):
    """An enrollment the lead's or the sequence's state does not allow."""


def lead_is_suppressed(lead: Lead) -> bool:
    """Whether nurturing may not email the lead: unsubscribed, bounced, no address, or
    an address on the suppression list."""
    return (
        lead.email_status != EmailStatus.VALID
        or not lead.email
        or Suppression.objects.filter(email=lead.email).exists()
    )


def _first_step(sequence: Sequence) -> Step | None:
    return sequence.steps.order_by("position").first()


def _new_enrollment(
    *, lead_id: int, sequence: Sequence, first: Step | None, source: str, by: User | None, now
) -> Enrollment:
    enrollment = Enrollment(
        lead_id=lead_id, sequence=sequence, source=source, enrolled_by=by, started_at=now
    )
    if first is None:
        enrollment.next_due_at = now  # processing completes it
    else:
        enrollment.advance(next_step=first, now=now)
    return enrollment


def enrollment_check(*, lead: Lead, sequence: Sequence) -> None:
    """Raise ``EnrollmentError``, keyed by the field at fault, when ``lead`` may not be
    enrolled in ``sequence``: the sequence is paused, or the lead may not be emailed
    (unsubscribed, bounced, suppressed)."""
    _check_active(sequence)
    if lead_is_suppressed(lead):
        raise EnrollmentError(
            {"lead": f"{lead.email} is unsubscribed or bounced: it is never emailed."}
        )


def _check_active(sequence: Sequence) -> None:
    if not sequence.is_active:
        raise EnrollmentError({"sequence": f"“{sequence}” is paused."})


def enrollment_start(
    *,
    lead: Lead,
    sequence: Sequence,
    source: str = EnrollmentSource.MANUAL,
    by: User | None = None,
    now: dt.datetime | None = None,
) -> tuple[Enrollment, bool]:
    """Enroll a lead in a sequence; the enrollment and whether it is new.

    Raises ``EnrollmentError`` for a paused sequence or a lead that may not be emailed
    (unsubscribed, bounced, suppressed). An active enrollment of the lead in the
    sequence is returned as it is: the partial unique constraint
    ``enrollment_one_active_per_lead_sequence`` keeps racing calls to one row.
    """
    now = now or timezone.now()
    enrollment_check(lead=lead, sequence=sequence)
    enrollment = _new_enrollment(
        lead_id=lead.pk, sequence=sequence, first=_first_step(sequence), source=source, by=by,
        now=now,
    )  # fmt: skip
    try:
        with transaction.atomic():
            enrollment.save()
    except IntegrityError:
        return Enrollment.objects.active().get(lead=lead, sequence=sequence), False
    return enrollment, True


def enrollments_start_many(
    *,
    lead_ids: Iterable[int],
    sequence: Sequence,
    source: str = EnrollmentSource.MANUAL,
    by: User | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Enroll many leads at once (admin bulk enrollment, the hourly sweep); how many new.

    Leads that may not be emailed are skipped, as are leads already active in the
    sequence (``INSERT … ON CONFLICT DO NOTHING`` on the partial unique constraint).
    """
    now = now or timezone.now()
    _check_active(sequence)
    first = _first_step(sequence)
    ids = list(lead_ids)
    added = 0
    for start in range(0, len(ids), BATCH):
        chunk = (
            Lead.objects.filter(pk__in=ids[start : start + BATCH], email_status=EmailStatus.VALID)
            .exclude(email="")
            .exclude(email__in=Suppression.objects.values("email"))
            .values_list("pk", flat=True)
        )
        rows = [
            _new_enrollment(lead_id=pk, sequence=sequence, first=first, source=source, by=by,
                            now=now)
            for pk in chunk
        ]  # fmt: skip
        with transaction.atomic():
            before = Enrollment.objects.active().filter(sequence=sequence).count()
            Enrollment.objects.bulk_create(rows, ignore_conflicts=True)
            added += Enrollment.objects.active().filter(sequence=sequence).count() - before
    return added


def enrollment_exit(*, enrollment: Enrollment, reason: str, now: dt.datetime | None = None) -> bool:
    """End an active enrollment for ``reason``; whether it was active."""
    now = now or timezone.now()
    return bool(
        Enrollment.objects.active()
        .filter(pk=enrollment.pk)
        .update(status=EnrollmentStatus.EXITED, exit_reason=reason, ended_at=now, next_due_at=None)
    )


def enrollments_exit_for_lead(
    *, lead_id: int, reason: str, now: dt.datetime, where: Q | None = None
) -> int:
    """End the lead's active enrollments (those matching ``where``); how many."""
    enrollments = Enrollment.objects.active().filter(lead_id=lead_id)
    if where is not None:
        enrollments = enrollments.filter(where)
    return enrollments.update(
        status=EnrollmentStatus.EXITED, exit_reason=reason, ended_at=now, next_due_at=None
    )


def exit_reason_now(enrollment: Enrollment, lead: Lead, now: dt.datetime) -> str:
    """Why an active enrollment must end now, or "" when it goes on."""
    sequence = enrollment.sequence
    if lead.email_status == EmailStatus.BOUNCED:
        return ExitReason.BOUNCED
    if lead.email_status != EmailStatus.VALID:
        return ExitReason.UNSUBSCRIBED
    if lead.stage in sequence.exit_stages:
        return ExitReason.STAGE
    deadline = enrollment.deadline
    if deadline is not None and now >= deadline:
        return ExitReason.EXPIRED
    if (
        enrollment.source == EnrollmentSource.AUTO
        and sequence.exit_on_track_change
        and not sequence.on_track(lead)
    ):
        return ExitReason.TRACK
    return ""


def _may_enter(lead: Lead, sequence: Sequence) -> bool:
    """Whether an earlier enrollment keeps the lead out (done, replied, removed by hand)."""
    ended = Enrollment.objects.filter(lead=lead, sequence=sequence).exclude(
        status=EnrollmentStatus.ACTIVE
    )
    return not ended.exclude(exit_reason__in=REENTRY_REASONS).exists()


def lead_sync(*, lead_id: int, now: dt.datetime | None = None) -> Enrollment | None:
    """Bring a lead's nurture tracks in line with its band, score and stage.

    Ends the active enrollments it no longer belongs in (an exit stage reached, another
    band's track, the maximum duration), then puts it on the highest-priority automatic
    sequence that admits it, leaving the automatic track it was on when that one ranks
    lower. Manual enrollments only end by their exit criteria. Locks the lead, so
    concurrent syncs of one lead run one after the other. Returns the new enrollment.
    """
    now = now or timezone.now()
    with transaction.atomic():
        lead = Lead.objects.select_for_update(no_key=True).filter(pk=lead_id).first()
        if lead is None:
            return None
        active = list(
            Enrollment.objects.active().filter(lead=lead).select_related("sequence").order_by("pk")
        )
        staying = []
        for enrollment in active:
            reason = exit_reason_now(enrollment, lead, now)
            if reason:
                enrollment_exit(enrollment=enrollment, reason=reason, now=now)
            else:
                staying.append(enrollment)
        if lead_is_suppressed(lead):
            return None
        best = next(
            (
                sequence
                for sequence in Sequence.objects.active().filter(auto_enroll=True).by_priority()
                if sequence.admits(lead, now=now) and _may_enter(lead, sequence)
            ),
            None,
        )
        if best is None or any(e.sequence_id == best.pk for e in staying):
            return None
        current = [e for e in staying if e.source == EnrollmentSource.AUTO]
        if current and current[0].sequence.priority >= best.priority:
            return None
        for enrollment in current:
            enrollment_exit(enrollment=enrollment, reason=ExitReason.TRACK, now=now)
        enrollment, _ = enrollment_start(
            lead=lead, sequence=best, source=EnrollmentSource.AUTO, now=now
        )
        return enrollment


def lead_sync_request(*, lead_id: int) -> None:
    """Queue ``lead_sync``; a broker outage is logged and the hourly sweep catches up."""
    task_enqueue("nurturing.tasks.sync_lead", lead_id, what=f"Nurture sync of lead {lead_id}")


# The leads one ``sync_leads`` task brings in line: a rescore or the nightly decay may move
# the bands of thousands of leads at once, and one message a lead would flood the broker.
SYNC_BATCH = 500


def leads_sync_request(*, lead_ids: list[int]) -> None:
    """Queue ``lead_sync`` for many leads, ``SYNC_BATCH`` to a task; a broker outage is
    logged and the hourly sweep catches up."""
    for start in range(0, len(lead_ids), SYNC_BATCH):
        batch = lead_ids[start : start + SYNC_BATCH]
        task_enqueue(
            "nurturing.tasks.sync_leads", batch, what=f"Nurture sync of {len(batch)} leads"
        )


def auto_enroll_holds_add(*, lead_ids: Iterable[int], reason: str) -> None:
    """Hold these leads out of the hourly sweep (``AutoEnrollHold``); leads held already
    keep their hold. On PostgreSQL one statement for any number of leads."""
    lead_ids = list(lead_ids)
    if not lead_ids:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {AutoEnrollHold._meta.db_table} (lead_id, reason, created_at) "
                "SELECT unnest(%s::bigint[]), %s, %s ON CONFLICT (lead_id) DO NOTHING",
                [lead_ids, reason, timezone.now()],
            )
        return
    AutoEnrollHold.objects.bulk_create(
        [AutoEnrollHold(lead_id=pk, reason=reason) for pk in lead_ids],
        batch_size=500,
        ignore_conflicts=True,
    )


def sequences_enroll_matching(*, now: dt.datetime | None = None) -> int:
    """Hourly: enroll the leads that match an automatic sequence and are on no automatic
    track yet, highest priority first; how many were enrolled.

    This is how leads whose band never changes (new cold leads, past customers gone
    quiet) find their track. Leads under an ``AutoEnrollHold`` (imported history) are
    left out.
    """
    now = now or timezone.now()
    added = 0
    for sequence in Sequence.objects.active().filter(auto_enroll=True).by_priority():
        on_a_track = Enrollment.objects.active().filter(source=EnrollmentSource.AUTO)
        kept_out = Enrollment.objects.filter(sequence=sequence).exclude(
            Q(status=EnrollmentStatus.ACTIVE) | Q(exit_reason__in=REENTRY_REASONS)
        )
        lead_ids = (
            sequence.entrants(now=now)
            .exclude(pk__in=on_a_track.values("lead_id"))
            .exclude(pk__in=kept_out.values("lead_id"))
            .exclude(pk__in=AutoEnrollHold.objects.values("lead_id"))
            .order_by("pk")
            .values_list("pk", flat=True)
            .distinct()
        )
        added += enrollments_start_many(
            lead_ids=list(lead_ids), sequence=sequence, source=EnrollmentSource.AUTO, now=now
        )
    return added
