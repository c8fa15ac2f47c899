"""Enrolling leads in sequences and walking them through the steps.

Beat runs ``enrollments_process_due`` every minute: it claims due enrollments in
batches (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, a conditional UPDATE per
row elsewhere), decides each one's step (exit, wait for the send window or the frequency
cap, create a task, or create the email's ``Message`` row) and moves the enrollment on,
all in one transaction. The messages are queued on the email queue once it commits;
``message_send`` claims its row before sending, so a message goes out at most once
however often its task runs, and checks the lead's suppression first, so an unsubscribe
stops even a step that was already queued.
"""

from __future__ import annotations

import datetime as dt
import smtplib
from collections import defaultdict
from collections.abc import Iterable
from email.utils import formataddr, make_msgid, parseaddr
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from django.utils.html import strip_tags

from crm.resilience import task_enqueue
from leads.models import EmailStatus, Lead, Task, TaskKind

from .models import (
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    ExitReason,
    Message,
    MessageStatus,
    Sequence,
    SequenceStatus,
    Step,
    StepKind,
    Suppression,
    WindowZone,
)
from .personalize import RenderedEmail, lead_context, render, render_email
from .schedule import account_zone, next_in_window, zone_for_country

if TYPE_CHECKING:
    from crm.models import User


BATCH = 500
# How long the conditional-UPDATE claim (databases without SKIP LOCKED) holds a row.
CLAIM_LEASE = dt.timedelta(minutes=5)
# A queued message nobody claimed this long after it was made lost its task message.
STALLED_AFTER = dt.timedelta(minutes=5)
# A claim this old means the sending worker died mid-send: the message may have gone out.
ABANDONED_AFTER = dt.timedelta(hours=1)
# Exits after which the hourly sweep and track switching may enroll the lead again.
REENTRY_REASONS = (ExitReason.TRACK, ExitReason.STAGE)


class EnrollmentError(ValidationError):
    """An enrollment the lead's or the sequence's state does not allow."""


class TransientSendError(Exception):
    """The mail server could not take the message now; try again later."""


# --- Enrolling -----------------------------------------------------------------------


def lead_is_suppressed(lead: Lead) -> bool:
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
    if not sequence.is_active:
        raise EnrollmentError(f"“{sequence}” is paused.")
    if lead_is_suppressed(lead):
        raise EnrollmentError(f"{lead.email} is unsubscribed or bounced: it is never emailed.")
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
    if not sequence.is_active:
        raise EnrollmentError(f"“{sequence}” is paused.")
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


def _exit_reason(enrollment: Enrollment, lead: Lead, now: dt.datetime) -> str:
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
            reason = _exit_reason(enrollment, lead, now)
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
    from .tasks import sync_lead

    task_enqueue(sync_lead, lead_id, what=f"Nurture sync of lead {lead_id}")


def sequences_enroll_matching(*, now: dt.datetime | None = None) -> int:
    """Hourly: enroll the leads that match an automatic sequence and are on no automatic
    track yet, highest priority first; how many were enrolled.

    This is how leads whose band never changes (new cold leads, past customers gone
    quiet) find their track.
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
            .order_by("pk")
            .values_list("pk", flat=True)
            .distinct()
        )
        added += enrollments_start_many(
            lead_ids=list(lead_ids), sequence=sequence, source=EnrollmentSource.AUTO, now=now
        )
    return added


# --- Pausing -----------------------------------------------------------------------------


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


# --- Processing due steps -----------------------------------------------------------


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
    reason = _exit_reason(enrollment, lead, now)
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
        work.tasks.append(_owner_task(step, lead, now))
    enrollment.advance(next_step=following, now=now)


def _owner_task(step: Step, lead: Lead, now: dt.datetime) -> Task:
    context = lead_context(lead, unsubscribe_url="")
    title = " ".join(render(step.subject, context, html=False).split())[:200]
    return Task(lead=lead, assignee_id=lead.owner_id, title=title, kind=TaskKind.EMAIL, due_at=now)


# --- Sending ---------------------------------------------------------------------------


def messages_send_request(*, message_ids: list[int]) -> int:
    """Queue the messages on the email queue; how many were queued. A broker outage is
    logged: beat's ``messages_resume_stalled`` queues them again."""
    from .tasks import send_message

    queued = 0
    for message_id in message_ids:
        if not task_enqueue(send_message, message_id, what=f"Nurture message {message_id}"):
            break
        queued += 1
    return queued


def sender_for(lead: Lead) -> str:
    """The lead's owner when assigned (people answer people), else the default sender."""
    owner = lead.owner
    if owner is not None and owner.email:
        return formataddr((owner.get_full_name() or owner.username, owner.email))
    return settings.NURTURE_DEFAULT_FROM


def nurture_email(message: Message, rendered: RenderedEmail, sender: str) -> EmailMultiAlternatives:
    """The email of a message, with RFC 8058 one-click unsubscribe headers."""
    headers = {
        "Message-ID": message.provider_message_id,
        "List-Unsubscribe": f"<{rendered.unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text or strip_tags(rendered.html),
        from_email=sender,
        to=[message.to_email],
        headers=headers,
    )
    if rendered.html:
        email.attach_alternative(rendered.html, "text/html")
    return email


def _cancel_reason(message: Message) -> str:
    lead = message.lead
    if message.enrollment.status == EnrollmentStatus.EXITED:
        return f"Not sent: {message.enrollment.get_exit_reason_display().lower()}."
    if lead_is_suppressed(lead):
        return "Not sent: the address is unsubscribed or bounced."
    if lead.email != message.to_email:
        return "Not sent: the lead's address changed."
    return ""


def _is_permanent(exc: Exception) -> bool:
    """A 5xx answer about this message; authentication and connection trouble are not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return False
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


def message_send(*, message_id: int, final_attempt: bool = False, now=None) -> str:
    """Send a queued message once; the status it ends in ("" when another run has it).

    Claims the row with a conditional UPDATE, so duplicated task messages send one
    email. A lead unsubscribed or bounced meanwhile, or an enrollment that ended, cancels
    it. A permanent refusal (5xx) fails it and ends the enrollment; a transient one
    releases the claim and raises ``TransientSendError`` for the task to retry, unless
    this is the ``final_attempt``.
    """
    now = now or timezone.now()
    claimed = Message.objects.filter(
        pk=message_id, status=MessageStatus.QUEUED, claimed_at__isnull=True
    ).update(claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return ""
    message = Message.objects.select_related(
        "lead__owner", "lead__company", "step", "enrollment__sequence"
    ).get(pk=message_id)
    if message.enrollment.sequence.status == SequenceStatus.PAUSED:
        # Held back, still queued: resuming the sequence queues it again.
        Message.objects.filter(pk=message_id).update(claimed_at=None, attempts=F("attempts") - 1)
        return ""
    reason = _cancel_reason(message)
    if reason:
        return _finish(message, MessageStatus.CANCELLED, error=reason)
    sender = sender_for(message.lead)
    if not message.provider_message_id:
        message.provider_message_id = make_msgid(domain=_domain(sender))
    try:
        rendered = render_email(
            subject=message.step.subject,
            body_text=message.step.body_text,
            body_html=message.step.body_html,
            lead=message.lead,
            message_id=message.pk,
        )
    except Exception as exc:  # a template that cannot render for this lead
        return _fail(message, f"The step's template failed: {exc}", now)
    try:
        nurture_email(message, rendered, sender).send()
    except (smtplib.SMTPException, OSError) as exc:
        if _is_permanent(exc) or final_attempt:
            return _fail(message, f"{type(exc).__name__}: {exc}", now)
        Message.objects.filter(pk=message_id).update(claimed_at=None, error=str(exc)[:1000])
        raise TransientSendError(str(exc)) from exc
    Message.objects.filter(pk=message_id).update(
        status=MessageStatus.SENT,
        sent_at=now,
        claimed_at=None,
        error="",
        subject=rendered.subject,
        links=rendered.links,
        from_email=sender[:320],
        provider_message_id=message.provider_message_id,
    )
    return MessageStatus.SENT


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "localhost"


def _finish(message: Message, status: str, *, error: str) -> str:
    Message.objects.filter(pk=message.pk).update(status=status, claimed_at=None, error=error)
    return status


def _fail(message: Message, error: str, now: dt.datetime) -> str:
    """Record a permanent failure and end the enrollment: nothing later in it goes out."""
    with transaction.atomic():
        _finish(message, MessageStatus.FAILED, error=error[:1000])
        enrollment_exit(enrollment=message.enrollment, reason=ExitReason.FAILED, now=now)
    return MessageStatus.FAILED


def messages_resume_stalled(*, now: dt.datetime | None = None) -> int:
    """Beat: queue again the messages whose task message was lost; fail those whose
    sender died mid-send (not retried: the mail server may have taken it). How many
    were queued again."""
    now = now or timezone.now()
    queued = Message.objects.filter(status=MessageStatus.QUEUED)
    Message.objects.filter(
        pk__in=queued.filter(claimed_at__lt=now - ABANDONED_AFTER).values("pk")
    ).update(
        status=MessageStatus.FAILED,
        claimed_at=None,
        error="Sending was interrupted; not retried, as the message may have gone out.",
    )
    stalled = list(
        queued.filter(claimed_at__isnull=True, created_at__lt=now - STALLED_AFTER)
        .exclude(enrollment__sequence__status=SequenceStatus.PAUSED)
        .order_by("created_at")
        .values_list("pk", flat=True)[:5000]
    )
    return messages_send_request(message_ids=stalled) if stalled else 0


def sequence_stats_rows(sequence: Sequence) -> list[dict[str, Any]]:
    """Per step: the message counters and the leads that qualified after it."""
    names = ["sent", "delivered", "opened", "clicked", "replied", "bounced", "unsubscribed"]
    rows = []
    for step in sequence.steps.with_stats().order_by("position"):
        row: dict[str, Any] = {"step": step}
        row.update({name: getattr(step, f"n_{name}") for name in [*names, "mql", "sql"]})
        rows.append(row)
    return rows
