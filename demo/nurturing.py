"""Starter nurture sequences for the demo world: one track per band of lead, plus a
re-engagement track for past customers gone quiet. Their copy is meant to be edited."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import transaction

from leads.models import Band, Stage
from nurturing.models import Sequence, Step

URL_RE = re.compile(r"https://\S+")
SIGNATURE = "\n\n{{ owner_name|default:'The Hotlist team' }}"


@dataclass(frozen=True)
class StarterStep:
    delay_days: int
    subject: str
    text: str


def _html(text: str) -> str:
    """The HTML body of a starter step: its text in paragraphs, its URLs as links."""
    linked = URL_RE.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', text)
    paragraphs = [p.strip() for p in linked.split("\n\n") if p.strip()]
    return "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in paragraphs)


COLD = [
    StarterStep(
        0,
        "A five-minute guide to {{ company_name|default:'your team' }}'s first scoring model",
        "Hi {{ first_name|default:'there' }},\n\n"
        "Most teams start scoring leads with a spreadsheet and a gut feeling. Our short guide "
        "shows how to pick the five signals that matter (job title, company size, pricing "
        "visits, demo requests, email replies) and weigh them in an afternoon:\n"
        "https://hotlist.example/guides/first-scoring-model" + SIGNATURE,
    ),
    StarterStep(
        5,
        "Why the best sales teams call hot leads within an hour",
        "Hi {{ first_name|default:'there' }},\n\n"
        "Leads contacted within an hour are several times more likely to convert than those "
        "called the next day. Here is how teams set up alerts and hand-offs so no hot lead "
        "waits:\nhttps://hotlist.example/blog/speed-to-lead" + SIGNATURE,
    ),
    StarterStep(
        9,
        "Checklist: is your CRM data good enough to score?",
        "Hi {{ first_name|default:'there' }},\n\n"
        "Scores are only as good as the data behind them. This one-page checklist covers "
        "duplicates, missing job titles and stale activity:\n"
        "https://hotlist.example/guides/data-checklist" + SIGNATURE,
    ),
]

WARM = [
    StarterStep(
        0,
        "How Northwind's reps stopped chasing cold leads",
        "Hi {{ first_name|default:'there' }},\n\n"
        "Northwind's sales team cut the time to first call from two days to 40 minutes and "
        "doubled demo bookings in a quarter. The full case study:\n"
        "https://hotlist.example/customers/northwind" + SIGNATURE,
    ),
    StarterStep(
        4,
        "Pricing for {{ company_name|default:'teams like yours' }}",
        "Hi {{ first_name|default:'there' }},\n\n"
        "You have been looking at how Hotlist works, so here is what it costs: plans start "
        "per seat with scoring, hand-offs and nurture included, and there is no fee for "
        "leads. See the plans and a comparison:\nhttps://hotlist.example/pricing\n\n"
        "Happy to walk you through it: just reply to this email." + SIGNATURE,
    ),
    StarterStep(
        7,
        "A 20-minute demo with your own data?",
        "Hi {{ first_name|default:'there' }},\n\n"
        "If it helps, I can show Hotlist scoring a sample of your own leads. Pick a time "
        "that suits you:\nhttps://hotlist.example/demo" + SIGNATURE,
    ),
]

REENGAGEMENT = [
    StarterStep(
        0,
        "It has been a while, {{ first_name|default:'friend' }}",
        "Hi {{ first_name|default:'there' }},\n\n"
        "We have not heard from {{ company_name|default:'you' }} in a few months, and a lot "
        "has changed: predictive scoring, team webhooks and nurture sequences. A two-minute "
        "tour of what is new:\nhttps://hotlist.example/whats-new" + SIGNATURE,
    ),
    StarterStep(
        10,
        "Anything we can help with?",
        "Hi {{ first_name|default:'there' }},\n\n"
        "If something is not working for your team, reply and tell me: I read every answer. "
        "Or book half an hour to review your setup together:\n"
        "https://hotlist.example/review" + SIGNATURE,
    ),
]


def _create(name: str, steps: list[StarterStep], **fields: object) -> Sequence:
    sequence, created = Sequence.objects.get_or_create(name=name, defaults=fields)
    if created:
        Step.objects.bulk_create(
            Step(
                sequence=sequence,
                position=position,
                delay_days=step.delay_days,
                subject=step.subject,
                body_text=step.text,
                body_html=_html(step.text),
                window_weekdays=[0, 1, 2, 3, 4],
                window_start_hour=9,
                window_end_hour=17,
            )
            for position, step in enumerate(steps, start=1)
        )
    return sequence


def seed_starter_sequences() -> list[Sequence]:
    """Create the starter sequences once (existing ones, by name, are left as they are)."""
    with transaction.atomic():
        return [
            _create(
                "Cold: educational track",
                COLD,
                description="Teaches leads who are not engaged yet; leaves when they warm up.",
                bands=[Band.COLD],
                priority=10,
                max_duration_days=60,
            ),
            _create(
                "Warm: case studies and pricing",
                WARM,
                description="Proof and prices for engaged leads, until sales takes over.",
                bands=[Band.WARM],
                priority=20,
                max_duration_days=30,
            ),
            _create(
                "Re-engagement: silent past customers",
                REENGAGEMENT,
                description="Customers with no activity for 90 days.",
                stages=[Stage.CUSTOMER],
                exit_stages=[],
                silent_days=90,
                exit_on_track_change=False,
                priority=30,
                max_duration_days=30,
            ),
        ]
