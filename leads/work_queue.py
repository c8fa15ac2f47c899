"""Next up: one person's work queue, the leads to work now in order, each once, with why.

The order is by urgency first, then score:

1. hand-offs to the person past their SLA with no touch yet, hottest first;
2. hand-offs to the person still within their SLA with no touch yet, by the SLA clock;
3. the person's overdue tasks on leads, then 4. those due later today;
5. inbound activity on the person's leads in the last ``INBOUND_WINDOW`` (a demo or
   quote request, a trial sign-up, an email reply, a form submission) nobody answered
   with a call, meeting or email reply since;
6. the person's leads whose score surged (the caller says which: surges are scoring's
   facts) and 7. their hot leads, both untouched for ``TOUCH_WINDOW``.

A lead appears once, with its most urgent reason; leads the person worked, snoozed or
skipped (``QueueDeferral``) stay out until then, and only leads the person may act on
(``leads.permissions.owner_access``) are in. Working an item is logging its outcome (a
call through ``lead_log_touch``: scored like any call, the first touch of an open
hand-off; the lead is back tomorrow if anything still calls for it), snoozing it or
skipping it with a reason; each makes it leave the queue. The queue is read in a fixed
number of queries, whatever the number of leads or items: the items are chosen from
the candidates' ranks, and only the chosen items' leads are read.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import IntEnum

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Q

from crm.models import User

from .handoff_models import HandOff, NotificationKind
from .models import (
    CLOSED_STAGES,
    SALES_TOUCH_TYPES,
    Activity,
    ActivityType,
    Band,
    DeferralReason,
    Lead,
    LeadRank,
    QueueDeferral,
    Task,
    owner_visibility,
)
from .notifications import notifications_settle
from .permissions import owner_access
from .queue_reasons import Event, duration_words, reason_sentence
from .sales_feedback import lead_log_touch
from .selectors import end_of_today
from .snooze_times import SNOOZE_CHOICES, snooze_until

QUEUE_LENGTH = 25
# Rows read per source: enough to fill the queue after leads already taken by a more
# urgent source, set aside or touched are dropped.
CANDIDATES = 100
INBOUND_WINDOW = dt.timedelta(days=3)
TOUCH_WINDOW = dt.timedelta(days=7)
EVENT_WINDOW = dt.timedelta(days=7)


# What the queue reads of a chosen item's lead: what its item and page show (name,
# contact, company, stage, band, score) and its owner's id. The chosen items' leads are
# read in this one query, after each source has given its rows as plain values and the
# items were chosen from the candidates' ranks: a lead read whole, with its company's,
# cost more to build and to ask for than to read, and each source asking for its own
# leads cost more to compile than to run.
LEAD_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "job_title",
    "stage",
    "band",
    "score",
    "owner",
    "company",
    "company__name",
)


class Urgency(IntEnum):
    HANDOFF_LATE = 1
    HANDOFF = 2
    TASK_OVERDUE = 3
    TASK_DUE = 4
    INBOUND = 5
    SURGING = 6
    HOT = 7


URGENCY_LABELS = {
    Urgency.HANDOFF_LATE: "Hand-off past its SLA",
    Urgency.HANDOFF: "New hand-off",
    Urgency.TASK_OVERDUE: "Overdue task",
    Urgency.TASK_DUE: "Task due today",
    Urgency.INBOUND: "Waiting for an answer",
    Urgency.SURGING: "Score surging",
    Urgency.HOT: "Hot lead",
}


@dataclass
class QueueItem:
    """One lead to work: why now (``urgency``, ``label``), why it matters (``reason``,
    from its own events) and, for hand-offs and tasks, the clock it runs against."""

    urgency: Urgency
    lead: Lead
    due_at: dt.datetime | None = None
    reason: str = ""
    label: str = ""
    task: Task | None = None
    handoff: HandOff | None = None

    @property
    def kind(self) -> str:
        return self.urgency.name.lower()


@dataclass(frozen=True)
class Candidate:
    """What choosing a lead's place in the queue reads of it: its rank (``LeadRank``)."""

    pk: int
    owner_id: int | None
    stage: str
    score: int
    band: str


@dataclass
class Pending:
    """An item before its lead is read: the queue is chosen from the candidates' ranks,
    and only the chosen items' leads are read."""

    urgency: Urgency
    candidate: Candidate
    due_at: dt.datetime | None = None
    task: Task | None = None
    handoff: HandOff | None = None

    @property
    def sort_key(self) -> tuple:
        lead = self.candidate
        if self.urgency == Urgency.HANDOFF:
            return (self.urgency, self.due_at, -lead.score, -lead.pk)
        return (self.urgency, -lead.score, -lead.pk)


# --- Reading the queue ---------------------------------------------------------------------


def work_queue_for(
    user: User,
    *,
    now: dt.datetime,
    limit: int = QUEUE_LENGTH,
    surging: Collection[int] = (),
) -> list[QueueItem]:
    """The person's queue, most urgent first (module docstring), at most ``limit`` items.

    ``surging`` are ids of leads whose score surged lately (``scoring.selectors``);
    those the person owns count as surging. The items are chosen from the candidates'
    ranks, and only the chosen ones' leads are read: nine queries at most, and one for
    the owners of leads someone else owns.
    """
    deferred = list(
        QueueDeferral.objects.filter(user=user, until__gt=now).values_list("lead_id", flat=True)
    )
    handoffs = _handoffs(user, deferred)
    tasks = _tasks(user, now, deferred)
    inbound = _inbound_times(user, now, deferred)
    hot = _hot_lead_ids(user, deferred)
    # Inbound activity and surges count on the person's own open leads only, checked
    # once their ranks are read; the inbound query reads the person's leads already.
    own = {*inbound, *surging} - set(deferred)
    touches = _last_touches(list(dict.fromkeys([*hot, *own])), now)
    hot = _untouched_hot(hot, own, touches, now, limit)
    worked: list[HandOff | Task] = [*handoffs, *tasks]
    ranks = _ranks([*(row.lead_id for row in worked if row.lead_id), *hot, *own])
    pending: dict[int, Pending] = {}
    for row in worked:
        # A lead deleted between the two reads has no item.
        if row.lead_id and (candidate := ranks.get(row.lead_id)) is not None:
            _keep_most_urgent(pending, _item(row, candidate, now))
    for candidate in _candidates(ranks, hot=hot, own=own, user=user):
        touched, latest = touches.get(candidate.pk), inbound.get(candidate.pk)
        item = _waiting_item(candidate, touched, latest, surging, user, now)
        if item is not None:
            _keep_most_urgent(pending, item)
    owners = _owners(pending.values(), user)
    allowed = sorted(
        (entry for entry in pending.values() if _may_act(entry.candidate, owners, user)),
        key=lambda entry: entry.sort_key,
    )[:limit]
    leads = _leads([entry.candidate.pk for entry in allowed], owners)
    chosen = [
        QueueItem(entry.urgency, lead, due_at=entry.due_at, task=entry.task, handoff=entry.handoff)
        for entry in allowed
        if (lead := leads.get(entry.candidate.pk)) is not None
    ]
    events = _recent_events([queued.lead.pk for queued in chosen], now)
    for queued in chosen:
        _explain(queued, events.get(queued.lead.pk, []), now)
    return chosen


def _untouched_hot(
    hot: list[int], own: set[int], touches: dict[int, dt.datetime], now: dt.datetime, limit: int
) -> list[int]:
    """The hot leads that can still make the queue, hottest first: those with inbound
    activity or a surge (they may rank above a hot lead), and of the others the first
    ``limit`` nobody touched this week. The others could only come after those as hot
    leads, so they are never read."""
    kept, hot_only = [], 0
    for lead_id in hot:
        if lead_id in own:
            kept.append(lead_id)
        elif hot_only < limit and (
            (touched := touches.get(lead_id)) is None or touched < now - TOUCH_WINDOW
        ):
            kept.append(lead_id)
            hot_only += 1
    return kept


def _candidates(
    ranks: dict[int, Candidate], *, hot: list[int], own: set[int], user: User
) -> list[Candidate]:
    """The hot leads, then those with inbound activity or a surge that are the person's
    own and open, each once."""
    return [
        candidate
        for lead_id in dict.fromkeys([*hot, *own])
        if (candidate := ranks.get(lead_id)) is not None
        and (
            lead_id in hot
            or (candidate.owner_id == user.pk and candidate.stage not in CLOSED_STAGES)
        )
    ]


def _waiting_item(
    candidate: Candidate,
    touched: dt.datetime | None,
    inbound: dt.datetime | None,
    surging: Collection[int],
    user: User,
    now: dt.datetime,
) -> Pending | None:
    """The lead's item when it waits for the person: inbound activity nobody answered
    since (``inbound``: its latest), or a surge or a hot score untouched this week."""
    if inbound is not None and (touched is None or touched < inbound):
        return Pending(Urgency.INBOUND, candidate, due_at=inbound)
    if touched is not None and touched >= now - TOUCH_WINDOW:
        return None
    if candidate.pk in surging and candidate.owner_id == user.pk:
        return Pending(Urgency.SURGING, candidate)
    if candidate.band == Band.HOT:
        return Pending(Urgency.HOT, candidate)
    return None


def _may_act(candidate: Candidate, owners: dict[int, User], user: User) -> bool:
    owner = owners.get(candidate.owner_id) if candidate.owner_id is not None else None
    return owner_access(owner_id=candidate.owner_id, owner=owner, user=user).may_act


def _keep_most_urgent(items: dict[int, Pending], item: Pending) -> None:
    known = items.get(item.candidate.pk)
    if known is None or item.sort_key < known.sort_key:
        items[item.candidate.pk] = item


def _open_leads(user: User) -> Q:
    """Leads the person sees, not closed, said of a row's ``lead`` through its owner
    (``owner_visibility``): the rows drive the query, no lead is read beyond theirs."""
    return owner_visibility(user, lead="lead__") & ~Q(lead__stage__in=CLOSED_STAGES)


def _handoffs(user: User, deferred: list[int]) -> list[HandOff]:
    """Pending hand-offs to the person nobody touched yet, by SLA (``handoff_awaiting_idx``)."""
    handoffs = (
        HandOff.objects.awaiting(user)
        .filter(_open_leads(user), first_touch_at__isnull=True)
        .exclude(lead_id__in=deferred)
        .only("lead_id", "sla_due_at")
    )
    return list(handoffs[:CANDIDATES])


def _tasks(user: User, now: dt.datetime, deferred: list[int]) -> list[Task]:
    """The person's open tasks on leads, overdue or due today (``task_open_due_idx``)."""
    tasks = (
        Task.objects.open()
        .filter(_open_leads(user), assignee=user, due_at__lt=end_of_today(now))
        .exclude(lead_id__in=deferred)
        .only("lead_id", "title", "due_at")
        .order_by("due_at", "pk")
    )
    return list(tasks[:CANDIDATES])


def _item(row: HandOff | Task, candidate: Candidate, now: dt.datetime) -> Pending:
    """The item of a hand-off (urgent by its SLA) or a task (by its due time)."""
    if isinstance(row, Task):
        urgency = Urgency.TASK_OVERDUE if row.due_at < now else Urgency.TASK_DUE
        return Pending(urgency, candidate, due_at=row.due_at, task=row)
    late = row.sla_due_at is not None and row.sla_due_at < now
    return Pending(
        Urgency.HANDOFF_LATE if late else Urgency.HANDOFF,
        candidate,
        # Without an SLA, last among the hand-offs.
        due_at=row.sla_due_at or dt.datetime.max.replace(tzinfo=dt.UTC),
        handoff=row,
    )


def _inbound_times(user: User, now: dt.datetime, deferred: list[int]) -> dict[int, dt.datetime]:
    """The person's open leads that wrote in lately, and when they last did, newest
    first: from their ranks alone (``rank_owner_inbound_idx``, which holds the stage).
    The database keeps each lead's latest inbound time (``LeadRank.inbound_at``), so
    the window's activity of everyone's leads is not read."""
    rows = (
        LeadRank.objects.filter(
            owner=user, inbound_at__gte=now - INBOUND_WINDOW, inbound_at__lte=now
        )
        .exclude(stage__in=CLOSED_STAGES)
        .exclude(lead_id__in=deferred)
        .order_by("-inbound_at")
        .values_list("lead_id", "inbound_at")[:CANDIDATES]
    )
    return {lead_id: at for lead_id, at in rows if at is not None}


def _hot_lead_ids(user: User, deferred: list[int]) -> list[int]:
    """The person's open hot leads, hottest first, from their rank alone
    (``rank_owner_counts_idx``)."""
    ranks = (
        LeadRank.objects.filter(owner=user, band=Band.HOT)
        .exclude(stage__in=CLOSED_STAGES)
        .exclude(lead_id__in=deferred)
        .order_by("-score", "-lead_id")
    )
    return list(ranks.values_list("lead_id", flat=True)[:CANDIDATES])


def _ranks(ids: list[int]) -> dict[int, Candidate]:
    """The candidates of every source, by id, from their ranks in one query."""
    if not ids:
        return {}
    rows = LeadRank.objects.filter(lead_id__in=set(ids)).values_list(
        "lead_id", "owner_id", "stage", "score", "band"
    )
    return {row[0]: Candidate(*row) for row in rows}


def _owners(items: Iterable[Pending], user: User) -> dict[int, User]:
    """The owners, with their teams, of the leads someone else owns (a manager's team's,
    by hand-off or task), in one query when there are any: what ``owner_access`` reads.
    It decides on the owner's id alone for the person's own leads and unassigned ones,
    a rep's whole queue."""
    others = {
        item.candidate.owner_id for item in items if item.candidate.owner_id not in (None, user.pk)
    }
    if not others:
        return {}
    return User.objects.filter(pk__in=others).select_related("team").in_bulk()


def _leads(ids: list[int], owners: dict[int, User]) -> dict[int, Lead]:
    """The chosen items' leads, by id, in one query (``LEAD_FIELDS``), each with its
    owner when someone else owns it."""
    if not ids:
        return {}
    leads = Lead.objects.filter(pk__in=ids).select_related("company").only(*LEAD_FIELDS)
    found = {lead.pk: lead for lead in leads}
    for lead in found.values():
        if lead.owner_id in owners:
            lead.owner = owners[lead.owner_id]
    return found


def _last_touches(lead_ids: list[int], now: dt.datetime) -> dict[int, dt.datetime]:
    """Each lead's latest call, meeting or email reply a person logged (as speed to lead
    counts them) in the last ``EVENT_WINDOW``, in one grouped query
    (``activity_type_lead_idx``): a busy lead's hundreds of tracked events stay in the
    database."""
    if not lead_ids:
        return {}
    rows = (
        Activity.objects.filter(
            lead_id__in=lead_ids,
            type__in=SALES_TOUCH_TYPES,
            created_by__isnull=False,
            occurred_at__gte=now - EVENT_WINDOW,
        )
        .order_by()
        .values("lead_id")
        .annotate(last=Max("occurred_at"))
        .values_list("lead_id", "last")
    )
    return dict(rows)


def _recent_events(lead_ids: list[int], now: dt.datetime) -> dict[int, list[Event]]:
    """The shown leads' own events of the last ``EVENT_WINDOW`` (not a person's
    touches), in one query (``activity_timeline_idx``), as the plain values the reason
    reads."""
    if not lead_ids:
        return {}
    rows = (
        Activity.objects.filter(lead_id__in=lead_ids, occurred_at__gte=now - EVENT_WINDOW)
        .exclude(type__in=SALES_TOUCH_TYPES, created_by__isnull=False)
        .order_by()
        .values_list("lead_id", "type", "occurred_at", "url")
    )
    by_lead: dict[int, list[Event]] = defaultdict(list)
    for lead_id, type_, at, url in rows:
        by_lead[lead_id].append(Event(type_, at, url))
    return by_lead


def _explain(item: QueueItem, events: list[Event], now: dt.datetime) -> None:
    """Fill in the item's label (why now) and reason (what the lead did lately)."""
    item.reason = reason_sentence(events, now=now) or "No activity of its own this week."
    label = URGENCY_LABELS[item.urgency]
    if item.handoff is not None and item.handoff.sla_due_at is not None:
        left = item.handoff.sla_due_at - now
        clock = duration_words(left)
        due = f"in {clock}" if left.total_seconds() >= 0 else f"{clock} ago"
        label += f": first touch due {due}"
    elif item.task is not None:
        late = now - item.task.due_at
        clock = f"overdue by {duration_words(late)}" if late.total_seconds() > 0 else "due today"
        label += f": {item.task.title} ({clock})"
    elif item.urgency == Urgency.HOT:
        label += ", no call this week"
    item.label = label


# --- Working an item -------------------------------------------------------------------------


# The outcomes a rep logs from the queue, each a call, in the order of their keys 1 to 5.
OUTCOMES = [
    ("connected", "Connected"),
    ("voicemail", "Left voicemail"),
    ("no_answer", "No answer"),
    ("meeting_booked", "Meeting booked"),
    ("not_interested", "Not interested"),
]
OUTCOME_LABELS = dict(OUTCOMES)
SKIP_REASONS = [
    (DeferralReason.WRONG_PERSON, DeferralReason.WRONG_PERSON.label),
    (DeferralReason.ALREADY_TALKING, DeferralReason.ALREADY_TALKING.label),
    (DeferralReason.NOT_NOW, DeferralReason.NOT_NOW.label),
    (DeferralReason.OTHER, DeferralReason.OTHER.label),
]
# How long a skipped lead stays out of the skipper's queue.
SKIPPED_FOR = {
    DeferralReason.WRONG_PERSON: dt.timedelta(days=30),
    DeferralReason.ALREADY_TALKING: dt.timedelta(days=7),
    DeferralReason.OTHER: dt.timedelta(days=7),
}
NOTE_MAX = 200


def queue_outcome_log(
    *,
    lead: Lead,
    by: User,
    outcome: str,
    task: Task | None = None,
    notes: str = "",
    now: dt.datetime | None = None,
) -> Activity:
    """Log the outcome of a call from the queue: a call activity through
    ``lead_log_touch`` (scored after commit like any call; the first touch of the lead's
    open hand-off, its speed to lead) with the outcome in its properties.

    The worked lead leaves ``by``'s queue until tomorrow morning (its other reasons, an
    open task say, bring it back then). The item's task, when it was one and is
    ``by``'s, is done with the call, and ``by``'s task and surge notifications about the
    lead are settled: the call answers them. A "not interested" changes nothing else:
    the stage is the rep's call. Raises ``ValidationError`` keyed by field (``outcome``,
    ``notes``) and ``PermissionDenied`` when ``by`` cannot see the lead; nothing is
    stored then.
    """
    if outcome not in OUTCOME_LABELS:
        raise ValidationError({"outcome": f"Log one of: {', '.join(OUTCOME_LABELS.values())}."})
    with transaction.atomic():
        activity = lead_log_touch(
            lead=lead, by=by, type=ActivityType.CALL, notes=notes, outcome=outcome
        )
        now = now or activity.occurred_at
        kinds = [NotificationKind.SURGE]
        if (
            task is not None
            and task.lead_id == lead.pk
            and task.assignee_id == by.pk
            and Task.objects.filter(pk=task.pk, done_at__isnull=True).update(done_at=now)
        ):
            kinds.append(NotificationKind.TASK)
        notifications_settle(lead_id=lead.pk, kinds=kinds, users=[by.pk])
        _defer(lead, by, snooze_until("tomorrow", now=now), DeferralReason.WORKED, "", now)
    return activity


def queue_snooze(*, lead: Lead, by: User, choice: str, now: dt.datetime) -> QueueDeferral:
    """Keep the lead out of ``by``'s queue for an hour, until tomorrow morning or next
    week (``leads.snooze_times``). Raises ``ValidationError`` keyed ``until``."""
    if choice not in dict(SNOOZE_CHOICES):
        raise ValidationError({"until": "Snooze for 1 hour, until tomorrow or next week."})
    return _defer(lead, by, snooze_until(choice, now=now), DeferralReason.SNOOZED, "", now)


def queue_skip(
    *, lead: Lead, by: User, reason: str, note: str = "", now: dt.datetime
) -> QueueDeferral:
    """Skip the lead in ``by``'s queue, saying why: "not now" brings it back tomorrow
    morning, "already talking" and "other" in a week, "wrong person" in 30 days. "Other"
    needs a note. Raises ``ValidationError`` keyed ``reason`` or ``note``."""
    note = (note or "").strip()
    if reason not in dict(SKIP_REASONS):
        raise ValidationError({"reason": "Choose why you skip this lead."})
    if reason == DeferralReason.OTHER and not note:
        raise ValidationError({"note": "Say why you skip this lead."})
    if len(note) > NOTE_MAX:
        raise ValidationError({"note": f"Use at most {NOTE_MAX} characters."})
    if reason == DeferralReason.NOT_NOW:
        until = snooze_until("tomorrow", now=now)
    else:
        until = now + SKIPPED_FOR[DeferralReason(reason)]
    return _defer(lead, by, until, reason, note, now)


def _defer(
    lead: Lead, by: User, until: dt.datetime, reason: str, note: str, now: dt.datetime
) -> QueueDeferral:
    """Replace ``by``'s deferral of the lead (one per person and lead, its constraint)."""
    if not Lead.objects.visible_to(by).filter(pk=lead.pk).exists():
        raise PermissionDenied("You cannot change this lead.")
    deferral, _ = QueueDeferral.objects.update_or_create(
        user=by,
        lead=lead,
        defaults={"until": until, "reason": reason, "note": note, "created_at": now},
    )
    return deferral
