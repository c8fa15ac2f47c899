"""Hand-offs told to the owner's team webhooks (``crm.webhooks``, ``docs/WEBHOOKS.md``).

Connected in ``LeadsConfig.ready``. The payload lists the rules behind the score from
the provider scoring registers (``leads.score_explanations``); it decides nothing about
points.
Both signals are sent after the hand-off committed, so the deliveries are stored and
queued at once; the key (``<event>:<hand-off id>``) keeps a repeated signal from
posting twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from crm.models import TeamWebhook, User, WebhookEvent
from crm.webhooks import webhook_event

from .models import HandOff, Lead
from .score_explanations import lead_score_explanation
from .signals import handoff_escalated, lead_handed_off

log = logging.getLogger(__name__)

# How many positive and how many negative rules a payload lists.
TOP_RULES = 3


@receiver(lead_handed_off, dispatch_uid="leads.webhooks.handoff_assigned")
def handoff_assigned_webhook(sender: Any, handoff: HandOff, **kwargs: Any) -> None:
    occurred_at = handoff.assigned_at or handoff.created_at
    _announce(handoff, WebhookEvent.HANDOFF_ASSIGNED, occurred_at=occurred_at)


@receiver(handoff_escalated, dispatch_uid="leads.webhooks.handoff_escalated")
def handoff_escalated_webhook(sender: Any, handoff: HandOff, **kwargs: Any) -> None:
    occurred_at = handoff.escalated_at or timezone.now()
    _announce(handoff, WebhookEvent.HANDOFF_ESCALATED, occurred_at=occurred_at)


def _announce(handoff: HandOff, event: WebhookEvent, *, occurred_at: datetime) -> None:
    """Store the event for the owner's team. A failure here is logged, not raised: the
    hand-off has committed, and its other after-commit work must still run."""
    owner = handoff.owner or handoff.lead.owner
    team = owner.team if owner is not None else None
    try:
        if team is None or not TeamWebhook.objects.filter(team=team, active=True).exists():
            return  # most teams have none: skip reading the score explanation
        webhook_event(
            team=team,
            event=event,
            key=f"{event}:{handoff.pk}",
            payload=handoff_payload(handoff=handoff, event=event, occurred_at=occurred_at),
        )
    except Exception:
        log.exception("Webhook event %s for hand-off %s not stored", event, handoff.pk)


def handoff_payload(*, handoff: HandOff, event: str, occurred_at: datetime) -> dict[str, Any]:
    """The JSON body of a hand-off event; ``text`` is the one line a chat room shows."""
    lead = handoff.lead
    owner = handoff.owner or lead.owner
    escalated_to = handoff.escalated_to
    payload: dict[str, Any] = {
        "event": str(event),
        "occurred_at": occurred_at.isoformat(),
        "text": "",
        "handoff": {"id": handoff.pk, "assigned_by": handoff.assigned_by or ""},
        "lead": lead_summary(lead),
        "owner": _person(owner),
        "sla_due_at": handoff.sla_due_at.isoformat() if handoff.sla_due_at else None,
        "top_rules": top_rules(lead),
    }
    if event == WebhookEvent.HANDOFF_ESCALATED:
        payload["escalated_to"] = _person(escalated_to)
    payload["text"] = _text(payload, handoff.sla_due_at)
    return payload


def lead_summary(lead: Lead) -> dict[str, Any]:
    company = lead.company
    return {
        "id": lead.pk,
        "name": lead.full_name,
        "email": lead.email,
        "company": company.name if company is not None else "",
        "job_title": lead.job_title,
        "country": lead.country,
        "stage": lead.stage,
        "score": lead.score,
        "band": lead.band,
        "grade": lead.grade,
        "url": settings.SITE_URL + lead.get_absolute_url(),
    }


def top_rules(lead: Lead) -> dict[str, list[dict[str, Any]]]:
    """The rules adding and taking away most of the lead's score now (decay applied),
    from its primary scoring model."""
    primary = lead_score_explanation(lead=lead) or {"positive": [], "negative": []}
    return {
        sign: [
            {"rule": line["reason"], "points": line["value_now"], "times": line["times"]}
            for line in primary[sign][:TOP_RULES]
        ]
        for sign in ("positive", "negative")
    }


def _person(user: User | None) -> dict[str, str] | None:
    if user is None:
        return None
    return {"name": user.get_full_name() or user.get_username(), "email": user.email}


def _text(payload: dict[str, Any], sla_due_at: datetime | None) -> str:
    """One line for a chat room, e.g. “Hand-off: Ada Lovelace (Fleet Co), score 87 hot,
    grade A → Rita Rep, follow up by 2025-05-01 14:00 UTC. <link>”."""
    lead = payload["lead"]
    who = _chat_escape(lead["name"] or lead["email"])
    if lead["company"]:
        who += f" ({_chat_escape(lead['company'])})"
    owner = _chat_escape(payload["owner"]["name"]) if payload["owner"] else "nobody yet"
    score = f"score {lead['score']} {lead['band']}, grade {lead['grade']}"
    if payload["event"] == WebhookEvent.HANDOFF_ESCALATED:
        to = payload["escalated_to"]
        to = _chat_escape(to["name"]) if to else "the manager"
        return (
            f"Escalated: {who}, {score}, not followed up by {owner}; now with {to}. " + lead["url"]
        )
    due = f", follow up by {timezone.localtime(sla_due_at):%Y-%m-%d %H:%M %Z}" if sla_due_at else ""
    return f"Hand-off: {who}, {score} → {owner}{due}. {lead['url']}"


def _chat_escape(text: str) -> str:
    """Chat services read ``<…>`` in ``text`` as links and mentions (``<!channel>``): a
    lead's name must not ping a room or hide a link, so &, < and > are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
