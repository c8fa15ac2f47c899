"""Beat's pass over due enrollments: each one's step decided and the enrollment moved on.

Beat runs ``enrollments_process_due`` every minute: it claims due enrollments in
batches (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, a conditional UPDATE per
row elsewhere), decides each one's step (exit, wait for the send window or the frequency
cap, create a task, or create the email's ``Message`` row) and moves the enrollment on,
all in one transaction. The messages are queued for sending (``nurturing.sending``) once
it commits.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from leads.models import Lead, Task, TaskKind

from .enrollment import exit_reason_now
from .models import Enrollment, ExitReason, Message, Step, StepKind, Suppression, WindowZone
from .personalize import lead_context, render
from .schedule import account_zone, next_in_window, zone_for_country
from .sending import messages_send_request

# Due enrollments claimed and handled per transaction.
BATCH = 500
# How long the conditional-UPDATE claim (databases without SKIP LOCKED) holds a row.
CLAIM_LEASE = dt.timedelta(minutes=5)


def enrollments_process_due(*, now: dt.datetime | None = None, batch: int = BATCH) -> int:
    """Beat: run every due step, batch by batch, until none is left; how many were handled.

    Each batch is one transaction; its messages are queued for sending once it commits.
    Enrollments another worker holds are skipped, so several workers share the work.
    """
    now = now or timezone.now()
    handled = 0
    while True:
        done = _process_batch(now=now, batch=batch)
        handled += done
        if done < batch:
            return handled


def _claim(now: dt.datetime, batch: int) -> list[int]:
    """Lock up to ``batch`` due enrollments for this transaction; their ids."""
    due = Enrollment.objects.due(now).order_by("next_due_at", "pk")
    if connection.features.has_select_for_update_skip_locked:
        locked = due.select_for_update(skip_locked=True, of=("self",))
        return list(locked.values_list("pk", flat=True)[:batch])
    claimed = []
    for pk, due_at in list(due.values_list("pk", "next_due_at")[:batch]):
        mine = Enrollment.objects.active().filter(pk=pk, next_due_at=due_at)
        if mine.update(next_due_at=now + CLAIM_LEASE):
            claimed.append(pk)
    return claimed


class _Batch:
    """What one batch reads up front, so each enrollment costs no query of its own."""

    def __init__(self, enrollments: list[Enrollment], now: dt.datetime) -> None:
        self.now = now
        lead_ids = {e.lead_id for e in enrollments}
        sequence_ids = {e.sequence_id for e in enrollments}
        self.steps: dict[int, list[Step]] = defaultdict(list)
        for step in Step.objects.filter(sequence_id__in=sequence_ids).order_by("position"):
            self.steps[step.sequence_id].append(step)
        self.cap = dt.timedelta(hours=settings.NURTURE_FREQUENCY_CAP_HOURS)
        self.last_email: dict[int, dt.datetime] = {}
        if self.cap:
            recent = Message.objects.filter(lead_id__in=lead_ids, created_at__gt=now - self.cap)
            self.last_email = dict(
                recent.values("lead_id").annotate(last=Max("created_at")).values_list("lead_id",
                                                                                       "last")
            )  # fmt: skip
        emails = [e.lead.email for e in enrollments]
        self.suppressed = set(
            Suppression.objects.filter(email__in=emails).values_list("email", flat=True)
        )
        self.messages: list[Message] = []
        self.tasks: list[Task] = []

    def step_at(self, sequence_id: int, position: int) -> tuple[Step | None, Step | None]:
        """The step at or after ``position`` and the one after it."""
        steps = [s for s in self.steps[sequence_id] if s.position >= position]
        return (steps[0] if steps else None), (steps[1] if len(steps) > 1 else None)


def _process_batch(*, now: dt.datetime, batch: int) -> int:
    with transaction.atomic():
        ids = _claim(now, batch)
        if not ids:
            return 0
        enrollments = list(
            Enrollment.objects.filter(pk__in=ids)
            .select_related("sequence", "lead", "lead__owner", "lead__company")
            .order_by("pk")
        )
        if connection.vendor == "postgresql":
            # Enrollments of one lead in two batches wait for each other: the cap holds.
            leads = Lead.objects.filter(pk__in={e.lead_id for e in enrollments}).order_by("pk")
            list(leads.select_for_update(no_key=True).values_list("pk", flat=True))
        work = _Batch(enrollments, now)
        for enrollment in enrollments:
            _handle(enrollment, work)
        Message.objects.bulk_create(work.messages)
        Task.objects.bulk_create(work.tasks)
        _save_enrollments(enrollments)
        message_ids = [m.pk for m in work.messages]
        if message_ids:
            transaction.on_commit(partial(messages_send_request, message_ids=message_ids))
    return len(ids)


ENROLLMENT_STATE = ["status", "exit_reason", "ended_at", "next_due_at", "next_position"]


def _save_enrollments(enrollments: list[Enrollment]) -> None:
    """Write the batch's enrollments: one ``UPDATE … FROM unnest()`` on PostgreSQL
    (``bulk_update`` spends far longer building its CASE expressions than the database
    takes to run them), ``bulk_update`` elsewhere."""
    if connection.vendor != "postgresql":
        Enrollment.objects.bulk_update(enrollments, ENROLLMENT_STATE, batch_size=BATCH)
        return
    columns = [[getattr(e, name) for e in enrollments] for name in ["pk", *ENROLLMENT_STATE]]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Enrollment._meta.db_table} AS e
            SET status = s.status, exit_reason = s.exit_reason, ended_at = s.ended_at,
                next_due_at = s.next_due_at, next_position = s.next_position
            FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[], %s::timestamptz[],
                        %s::timestamptz[], %s::int[])
                AS s (id, status, exit_reason, ended_at, next_due_at, next_position)
            WHERE e.id = s.id
            """,
            columns,
        )


def _window_start(step: Step, lead: Lead, at: dt.datetime) -> dt.datetime:
    if not step.has_window:
        return at
    zone = zone_for_country(lead.country) if step.window_zone == WindowZone.LEAD else account_zone()
    return next_in_window(
        at,
        zone=zone,
        weekdays=step.window_weekdays,
        start_hour=step.window_start_hour,
        end_hour=step.window_end_hour,
    )


def _handle(enrollment: Enrollment, work: _Batch) -> None:
    """Decide one due enrollment's step, in memory; the batch writes it."""
    now, lead = work.now, enrollment.lead
    reason = exit_reason_now(enrollment, lead, now)
    if not reason and lead.email in work.suppressed:
        reason = ExitReason.UNSUBSCRIBED
    if reason:
        enrollment.end(reason=reason, now=now)
        return
    step, following = work.step_at(enrollment.sequence_id, enrollment.next_position)
    if step is None:
        enrollment.end(reason=ExitReason.NONE, now=now)
        return
    opens = _window_start(step, lead, now)
    if step.kind == StepKind.EMAIL and work.cap and lead.pk in work.last_email:
        opens = max(opens, _window_start(step, lead, work.last_email[lead.pk] + work.cap))
    if opens > now:
        enrollment.next_position = step.position
        enrollment.next_due_at = opens
        return
    if step.kind == StepKind.EMAIL:
        work.messages.append(
            Message(
                enrollment=enrollment, step=step, lead=lead, to_email=lead.email, created_at=now
            )
        )
        work.last_email[lead.pk] = now
    elif lead.owner_id is not None:
        work.tasks.append(_owner_task(step, lead, assignee_id=lead.owner_id, now=now))
    enrollment.advance(next_step=following, now=now)


def _owner_task(step: Step, lead: Lead, *, assignee_id: int, now: dt.datetime) -> Task:
    context = lead_context(lead, unsubscribe_url="")
    title = " ".join(render(step.subject, context, html=False).split())[:200]
    return Task(lead=lead, assignee_id=assignee_id, title=title, kind=TaskKind.EMAIL, due_at=now)
