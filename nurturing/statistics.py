"""A sequence's statistics, and each step's: enrollments, messages and the leads that
qualified after them, counted by correlated subqueries (the sequences admin shows them)."""

from __future__ import annotations

from django.db import models
from django.db.models import Count, Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from leads.models import Stage, StageChange

from .models import Enrollment, EnrollmentStatus, Message, Sequence, Step

# Message counters of the sequence and step statistics: name → filter.
MESSAGE_COUNTERS: dict[str, Q] = {
    "sent": Q(status__in=["sent", "bounced"]),
    "delivered": Q(status="sent"),
    "opened": Q(opened_at__isnull=False),
    "clicked": Q(clicked_at__isnull=False),
    "replied": Q(replied_at__isnull=False),
    "bounced": Q(status="bounced"),
    "unsubscribed": Q(unsubscribed_at__isnull=False),
}


def count_by(queryset: models.QuerySet, group: str) -> Coalesce:
    """A correlated ``COUNT(*)`` of ``queryset`` grouped by ``group``, 0 when empty."""
    counted = queryset.order_by().values(group).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=models.IntegerField()), Value(0))


def reached_stage(stage: str) -> Exists:
    """Whether an enrollment's lead moved into ``stage`` after it was enrolled."""
    return Exists(
        StageChange.objects.filter(
            lead=OuterRef("lead"), to_stage=stage, at__gte=OuterRef("started_at")
        )
    )


def sequences_with_stats(sequences: models.QuerySet[Sequence]) -> models.QuerySet[Sequence]:
    """Each sequence with its enrollment and message counters."""
    enrollments = Enrollment.objects.filter(sequence=OuterRef("pk"))
    messages = Message.objects.filter(enrollment__sequence=OuterRef("pk"))
    counters = {
        f"n_{name}": count_by(messages.filter(where), "enrollment__sequence")
        for name, where in MESSAGE_COUNTERS.items()
    }
    return sequences.annotate(
        n_enrolled=count_by(enrollments, "sequence"),
        n_active=count_by(enrollments.filter(status=EnrollmentStatus.ACTIVE), "sequence"),
        n_mql=count_by(enrollments.filter(reached_stage(Stage.MQL)), "sequence"),
        n_sql=count_by(enrollments.filter(reached_stage(Stage.SQL)), "sequence"),
        **counters,
    )


def steps_with_stats(steps: models.QuerySet[Step]) -> models.QuerySet[Step]:
    """Each step with its message counters and the leads that qualified after it."""
    messages = Message.objects.filter(step=OuterRef("pk"))
    counters = {
        f"n_{name}": count_by(messages.filter(where), "step")
        for name, where in MESSAGE_COUNTERS.items()
    }
    sent = messages.filter(sent_at__isnull=False)
    for stage in (Stage.MQL, Stage.SQL):
        after = StageChange.objects.filter(
            lead=OuterRef("lead"), to_stage=stage, at__gte=OuterRef("sent_at")
        )
        counters[f"n_{stage}"] = count_by(sent.filter(Exists(after)), "step")
    return steps.annotate(**counters)
