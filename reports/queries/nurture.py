"""The nurture report's reads: per sequence and step, messages sent, opened, clicked,
replied and unsubscribed, and the enrolled leads that reached MQL and SQL."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Exists, OuterRef, Q

from leads.models import Stage, StageChange
from reports import stats
from reports.scope import ReportScope


def nurture_available() -> bool:
    from django.apps import apps

    return apps.is_installed("nurturing") and _nurture_models() is not None


def _nurture_models() -> Any:
    try:
        from nurturing.models import Enrollment, Message
    except ImportError:
        return None
    return Enrollment, Message


def nurture_steps(scope: ReportScope) -> list[dict[str, Any]]:
    """Per sequence and step: messages sent, opened, clicked, replied, unsubscribed,
    bounced, with the rates over sent."""
    _, message_model = _nurture_models()
    rows = (
        message_model.objects.filter(lead__in=scope.lead_ids)
        .order_by()
        .values("step__sequence__name", "step__position", "step__subject", "step_id")
        .annotate(
            sent=Count("pk", filter=Q(sent_at__isnull=False)),
            opened=Count("pk", filter=Q(opened_at__isnull=False)),
            clicked=Count("pk", filter=Q(clicked_at__isnull=False)),
            replied=Count("pk", filter=Q(replied_at__isnull=False)),
            unsubscribed=Count("pk", filter=Q(unsubscribed_at__isnull=False)),
            bounced=Count("pk", filter=Q(bounced_at__isnull=False) | Q(status="bounced")),
        )
        .order_by("step__sequence__name", "step__position", "step_id")
    )
    return [
        {
            "sequence": row["step__sequence__name"],
            "step": row["step__position"],
            "subject": row["step__subject"],
            "sent": row["sent"],
            "opened": row["opened"],
            "clicked": row["clicked"],
            "replied": row["replied"],
            "unsubscribed": row["unsubscribed"],
            "bounced": row["bounced"],
            "open_rate": stats.ratio(row["opened"], row["sent"]),
            "click_rate": stats.ratio(row["clicked"], row["sent"]),
        }
        for row in rows
    ]


def nurture_sequences(scope: ReportScope) -> list[dict[str, Any]]:
    """Per sequence: leads enrolled and the share that reached MQL and SQL after they
    were enrolled."""
    enrollment_model, _ = _nurture_models()
    later = StageChange.objects.filter(lead=OuterRef("lead_id"), at__gte=OuterRef("started_at"))
    mql_on = [Stage.MQL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER]
    rows = (
        enrollment_model.objects.filter(lead__in=scope.lead_ids)
        .annotate(
            to_mql=Exists(later.filter(to_stage__in=mql_on)),
            to_sql=Exists(later.filter(to_stage__in=mql_on[1:])),
        )
        .order_by()
        .values("sequence__name")
        .annotate(
            enrolled=Count("lead_id", distinct=True),
            mql=Count("lead_id", distinct=True, filter=Q(to_mql=True)),
            sql=Count("lead_id", distinct=True, filter=Q(to_sql=True)),
        )
        .order_by("sequence__name")
    )
    return [
        {
            "sequence": row["sequence__name"],
            "enrolled": row["enrolled"],
            "mql": row["mql"],
            "mql_rate": stats.ratio(row["mql"], row["enrolled"]),
            "sql": row["sql"],
            "sql_rate": stats.ratio(row["sql"], row["enrolled"]),
        }
        for row in rows
    ]
