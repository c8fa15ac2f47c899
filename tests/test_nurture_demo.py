"""The starter sequences seed_demo installs: valid templates, realistic tracks, once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from demo.nurturing import seed_starter_sequences
from leads.models import Band, Stage
from nurturing.models import Sequence, Step
from nurturing.personalize import render_email, template_errors
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db


def test_starter_sequences_cover_cold_warm_and_silent_customers():
    cold, warm, reengagement = seed_starter_sequences()

    assert (cold.bands, warm.bands) == ([Band.COLD], [Band.WARM])
    assert (reengagement.stages, reengagement.silent_days) == ([Stage.CUSTOMER], 90)
    assert warm.priority > cold.priority
    for step in Step.objects.all():
        step.full_clean()
        assert template_errors(step.body_html) == []
    assert "pricing" in " ".join(warm.steps.values_list("body_text", flat=True))


def test_starter_steps_render_for_a_lead_without_a_name_or_owner():
    seed_starter_sequences()
    lead = LeadFactory(first_name="", company=None)
    step = Step.objects.get(sequence__name__startswith="Warm", position=2)

    rendered = render_email(
        subject=step.subject,
        body_text=step.body_text,
        body_html=step.body_html,
        lead=lead,
        message_id=1,
    )

    assert rendered.subject == "Pricing for teams like yours"
    assert rendered.text.startswith("Hi there,")
    assert "The Hotlist team" in rendered.text
    assert rendered.links == ["https://hotlist.example/pricing"]


def test_seed_demo_installs_them_once():
    call_command("seed_demo", leads=5, no_scoring=True, stdout=StringIO())
    seed_starter_sequences()

    assert Sequence.objects.count() == 3
    assert Step.objects.count() == 8
