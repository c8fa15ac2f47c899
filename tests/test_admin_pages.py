"""The admin: every page renders for an admin, and each role sees only what it may."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from crm.models import ApiToken, Role, Team, TeamWebhook, User, WebhookDelivery, WorkerHeartbeat
from leads.company_merging import companies_merge
from leads.deals import deal_pipeline_ensure, deal_save
from leads.merging import leads_merge
from leads.models import (
    Activity,
    AssignmentRule,
    CompanyDuplicatePair,
    CustomFieldDefinition,
    Deal,
    DuplicatePair,
    DuplicateSettings,
    ExportJob,
    FieldType,
    Lead,
    LeadRating,
    Note,
    Notification,
    PendingEvent,
    ProductLine,
    Stage,
    StageChange,
    Task,
    TrackedEvent,
    TrackingIdentity,
    TrackingKey,
    WebForm,
)
from leads.stages import lead_move_to_stage
from nurturing.models import Enrollment, Message, Sequence, Step, Suppression
from reports.models import Campaign, DigestPreference
from tests.admin_forms import changeform_data
from tests.conftest import make_user
from tests.factories import ActivityFactory, CompanyFactory, LeadFactory

REGISTERED = sorted(
    (model for model in apps.get_models() if admin.site.is_registered(model)),
    key=lambda model: model._meta.label,
)
# The apps whose every admin change page the `world` fixture below has rows for; the
# apps built on top test their own change pages with their own rows.
FOUNDATION_APPS = {"auth", "crm", "leads"}
FOUNDATION = [model for model in REGISTERED if model._meta.app_label in FOUNDATION_APPS]


def admin_url(model_or_obj, view: str, *args) -> str:
    meta = model_or_obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


@pytest.fixture
def world(admin_user, marketer, manager, rep, other_rep) -> dict:
    """A few rows of every model the admin shows."""
    now = timezone.now()
    line = ProductLine.objects.create(name="Fleet tracking", slug="fleet-tracking")
    rep.product_lines.add(line)
    CustomFieldDefinition.objects.create(
        key="fleet_size", label="Fleet size", field_type=FieldType.INTEGER, min_value=1
    )
    lead = LeadFactory(owner=rep, custom_fields={"fleet_size": 12}, email="ada@fleet.example")
    lead.product_interests.add(line)
    ActivityFactory(lead=lead, url="https://hotlist.example/pricing")
    ActivityFactory(lead=lead, url="https://hotlist.example/demo", occurred_at=now)
    lead_move_to_stage(lead_id=lead.pk, stage=Stage.MQL, reason="Downloaded the guide")
    lead_move_to_stage(lead_id=lead.pk, stage=Stage.SQL, by=rep, reason="Qualified on call")
    deal_pipeline_ensure()
    deal_save(deal=Deal(lead=lead, name="Fleet rollout", amount=12000))
    Task.objects.create(lead=lead, assignee=rep, title="Call back", due_at=now)
    Note.objects.create(lead=lead, author=rep, body="Wants a demo next week")
    WorkerHeartbeat.objects.create(hostname="worker-1", beat_at=now)
    ApiToken.objects.issue(user=rep, name="CLI")
    WebForm.objects.create(name="Demo request", allowed_origins="https://www.fleet.example")
    TrackingKey.objects.issue(name="Website")
    TrackedEvent.objects.get_or_create(
        name="Demo Requested", defaults={"activity_type": "demo_request"}
    )
    TrackingIdentity.objects.create(kind="user_id", value="u-1", lead=lead)
    PendingEvent.objects.create(
        anonymous_id="a-1", type="page", message={"type": "page"}, occurred_at=now
    )
    AssignmentRule.objects.create(name="Germany", kind="territory", countries=["DE"], owner=rep)
    LeadRating.objects.create(lead=lead, by=rep, rating="good")
    Notification.objects.create(user=rep, kind="handoff", title="New lead for you", lead=lead)
    ExportJob.objects.create(
        requested_by=manager,
        source="workspace",
        query="band=hot",
        file_format="xlsx",
        columns=["id", "email"],
        status="done",
        total_rows=1,
        rows_written=1,
        file_name="export-1.xlsx",
        expires_at=now,
    )
    Campaign.objects.create(name="Spring webinar", spend=600)
    DigestPreference.objects.create(user=manager, weekly_digest=False)
    sequence = Sequence.objects.create(name="Cold: education", bands=["cold"])
    step = Step.objects.create(sequence=sequence, subject="Hi {{ first_name }}", body_text="Hello")
    enrollment = Enrollment.objects.create(lead=lead, sequence=sequence, next_due_at=now)
    Message.objects.create(enrollment=enrollment, step=step, lead=lead, to_email=lead.email)
    Suppression.objects.create(email="gone@fleet.example", reason="bounced")
    webhook = TeamWebhook.objects.create(team=rep.team, name="#sales", url="https://8.8.8.8/hook")
    WebhookDelivery.objects.create(
        webhook=webhook, event="handoff.assigned", key="handoff.assigned:1", payload={"text": "Hi"}
    )
    other_lead, pool_lead = LeadFactory(owner=other_rep), LeadFactory(owner=None)
    DuplicatePair.objects.create(
        lead_a=other_lead, lead_b=pool_lead, reasons=[{"kind": "phone", "score": 0.9}], score=0.9
    )
    DuplicateSettings.load()
    leads_merge(survivor_id=pool_lead.pk, others=[LeadFactory(owner=None).pk], by=admin_user)
    CompanyDuplicatePair.objects.create(
        company_a=other_lead.company,
        company_b=pool_lead.company,
        reasons=[{"kind": "domain", "score": 1.0, "value": "fleet.example"}],
        score=1.0,
        sure=True,
    )
    companies_merge(survivor_id=lead.company_id, others=[CompanyFactory().pk], by=admin_user)
    return {"lead": lead, "other_lead": other_lead, "pool_lead": pool_lead}


def test_registered_models_include_the_crm(db):
    labels = {model._meta.label for model in REGISTERED}

    assert {"crm.User", "crm.Team", "leads.Lead", "leads.Activity", "auth.Group"} <= labels


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_admin_changelist_and_its_search_render(client, admin_user, world, model):
    client.force_login(admin_user)

    listing = client.get(admin_url(model, "changelist"))
    search = client.get(admin_url(model, "changelist"), {"q": "a"})

    assert (listing.status_code, search.status_code) == (200, 200)


@pytest.mark.parametrize("model", FOUNDATION, ids=lambda model: model._meta.label)
def test_admin_change_page_renders(client, admin_user, world, model):
    # Given an admin and a row of the model
    client.force_login(admin_user)
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"add a {model._meta.label} row to the `world` fixture"

    # When the admin opens the row
    response = client.get(admin_url(model, "change", obj.pk))

    # Then its page renders with the row in it
    assert response.status_code == 200
    assert response.context["original"] == obj


def test_lead_change_page_shows_activities_and_stage_history(client, admin_user, world):
    client.force_login(admin_user)

    response = client.get(admin_url(Lead, "change", world["lead"].pk))

    assert response.status_code == 200
    inlines = {
        inline.formset.model: inline.formset for inline in response.context["inline_admin_formsets"]
    }
    stage_changes = [form.instance for form in inlines[Lead.stage_changes.rel.related_model].forms]
    assert [(c.from_stage, c.to_stage, c.by) for c in stage_changes] == [
        (Stage.MQL, Stage.SQL, world["lead"].owner),
        (Stage.NEW, Stage.MQL, None),
    ]
    assert len(inlines[Activity].forms) == 2
    assert len(inlines[Deal].forms) == 1
    page = response.content.decode()
    for text in ("Qualified on call", "Downloaded the guide", "https://hotlist.example/demo"):
        assert text in page


def test_lead_change_page_shows_activities_of_a_quiet_lead(client, admin_user):
    # Given a quiet lead with one old activity and a busy lead with 50 newer ones
    quiet = LeadFactory()
    ActivityFactory(lead=quiet, occurred_at=timezone.now() - dt.timedelta(days=30))
    busy = LeadFactory()
    Activity.objects.bulk_create(
        Activity(lead=busy, type="page_view", url=f"/p/{i}", occurred_at=timezone.now())
        for i in range(50)
    )
    client.force_login(admin_user)

    # When the quiet lead's admin page opens
    response = client.get(admin_url(Lead, "change", quiet.pk))

    # Then its one activity is listed
    inlines = {i.formset.model: i.formset for i in response.context["inline_admin_formsets"]}
    assert len(inlines[Activity].forms) == 1


def test_marketer_can_open_the_lead_changelist_and_sees_every_lead(client, marketer, world):
    client.force_login(marketer)

    response = client.get(admin_url(Lead, "changelist"))

    assert response.status_code == 200
    assert set(response.context["cl"].result_list) == set(Lead.objects.all())


@pytest.mark.parametrize("persona", ["rep", "outsider"])
def test_user_who_is_not_staff_is_sent_to_the_admin_login(client, world, request, persona):
    client.force_login(request.getfixturevalue(persona))

    response = client.get(admin_url(Lead, "changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_outsider_without_a_role_is_forbidden_and_changes_nothing(client, outsider, world):
    outsider.is_staff = True
    outsider.save(update_fields=["is_staff"])
    client.force_login(outsider)
    lead = world["lead"]
    before = Lead.objects.values().get(pk=lead.pk)

    listing = client.get(admin_url(Lead, "changelist"))
    post = client.post(admin_url(Lead, "change", lead.pk), {"first_name": "Mallory"})

    assert (listing.status_code, post.status_code) == (403, 403)
    assert Lead.objects.values().get(pk=lead.pk) == before


@pytest.fixture
def staff_manager(manager) -> User:
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    return manager


def test_manager_lead_changelist_lists_only_visible_leads(client, staff_manager, world):
    # Given a lead owned by a rep of another team
    far_rep = make_user("far_rep", Role.REP, team=Team.objects.create(name="South"))
    far_lead = LeadFactory(owner=far_rep)
    client.force_login(staff_manager)

    # When the manager opens the lead list
    response = client.get(admin_url(Lead, "changelist"))

    # Then it holds the team's leads and the pool, not the other team's
    assert response.status_code == 200
    listed = set(response.context["cl"].result_list)
    assert listed == {world["lead"], world["other_lead"], world["pool_lead"]}
    assert far_lead not in listed


def test_manager_cannot_open_or_change_another_teams_lead(client, staff_manager, world):
    far_rep = make_user("far_rep", Role.REP, team=Team.objects.create(name="South"))
    far_lead = LeadFactory(owner=far_rep, first_name="Grace")
    client.force_login(staff_manager)

    opened = client.get(admin_url(Lead, "change", far_lead.pk))
    posted = client.post(admin_url(Lead, "change", far_lead.pk), {"first_name": "Mallory"})

    assert opened.status_code == 302
    assert posted.status_code == 302
    far_lead.refresh_from_db()
    assert far_lead.first_name == "Grace"


def post_lead_change(client, lead: Lead, **changes) -> tuple:
    url = admin_url(Lead, "change", lead.pk)
    data = {**changeform_data(client.get(url)), **changes}
    return client.post(url, data)


def test_admin_saves_valid_custom_fields_coerced(client, admin_user, world):
    client.force_login(admin_user)
    lead = world["lead"]

    response = post_lead_change(client, lead, custom_fields='{"fleet_size": "40"}')

    assert response.status_code == 302, response.context["adminform"].form.errors
    lead.refresh_from_db()
    assert lead.custom_fields == {"fleet_size": 40}


@pytest.mark.parametrize(
    ("posted", "message"),
    [
        ('{"fleet_size": ', "Enter a valid JSON."),
        ('{"fleet_size": "many"}', "fleet_size: Enter a whole number."),
        ('{"fleet_size": 0}', "fleet_size: Must be at least 1."),
        ('{"colour": "red"}', "colour: Unknown custom field."),
        ('["fleet_size"]', "Give custom fields as an object."),
    ],
)
def test_admin_shows_custom_field_error_and_changes_nothing(
    client, admin_user, world, posted, message
):
    # Given a lead with a valid custom field
    client.force_login(admin_user)
    lead = world["lead"]
    before = Lead.objects.values().get(pk=lead.pk)

    # When its change form is saved with bad custom fields and a new first name
    response = post_lead_change(client, lead, custom_fields=posted, first_name="Changed")

    # Then the form comes back with the error beside the field, and the row is as it was
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert message in form.errors["custom_fields"]
    assert Lead.objects.values().get(pk=lead.pk) == before


def definition_form(**fields) -> dict:
    data = {
        "key": "region_code",
        "label": "Region code",
        "field_type": FieldType.TEXT,
        "choices": "[]",
        "help_text": "",
    }
    return {**data, **fields}


def test_admin_refuses_definition_with_a_bad_regex(client, admin_user):
    client.force_login(admin_user)

    response = client.post(admin_url(CustomFieldDefinition, "add"), definition_form(pattern="[A-Z"))

    assert response.status_code == 200
    assert "pattern" in response.context["adminform"].form.errors
    assert not CustomFieldDefinition.objects.exists()


def test_admin_saves_definition_whose_choices_box_was_emptied(client, admin_user):
    client.force_login(admin_user)

    response = client.post(admin_url(CustomFieldDefinition, "add"), definition_form(choices=""))

    assert response.status_code == 302
    assert CustomFieldDefinition.objects.get().choices == []


def test_rep_group_is_listed_in_the_group_admin(client, admin_user, world):
    client.force_login(admin_user)

    response = client.get(admin_url(Group, "changelist"))

    names = {group.name for group in response.context["cl"].result_list}
    assert {role.label for role in Role} <= names


@pytest.mark.parametrize("model", [Activity, Deal, Task, Note, StageChange], ids=str)
def test_manager_sees_only_rows_of_visible_leads_in_related_admins(
    client, staff_manager, world, model
):
    # Given a lead of another team with one row of each related kind
    far_rep = make_user("far_rep", Role.REP, team=Team.objects.create(name="South"))
    far_lead = LeadFactory(owner=far_rep)
    ActivityFactory(lead=far_lead)
    deal_save(deal=Deal(lead=far_lead, name="Secret deal"))
    Task.objects.create(lead=far_lead, assignee=far_rep, title="Secret", due_at=timezone.now())
    Note.objects.create(lead=far_lead, author=far_rep, body="Secret")
    lead_move_to_stage(lead_id=far_lead.pk, stage=Stage.MQL)
    client.force_login(staff_manager)

    # When the manager opens the related list in the admin
    response = client.get(admin_url(model, "changelist"))

    # Then no row of the other team's lead is listed
    assert response.status_code == 200
    assert {row.lead_id for row in response.context["cl"].result_list} == {world["lead"].pk}


def test_admin_changes_the_product_lines_a_rep_sells_on_the_user_page(client, admin_user, rep):
    # Given a rep who sells Analytics
    analytics = ProductLine.objects.create(name="Analytics", slug="analytics")
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    rep.product_lines.add(analytics)
    client.force_login(admin_user)
    url = reverse("admin:crm_user_change", args=[rep.pk])
    data = changeform_data(client.get(url))
    assert data["product_lines"] == [str(analytics.pk)]

    # When the admin saves the user page with Fleet instead
    response = client.post(url, {**data, "product_lines": [str(fleet.pk)]})

    # Then the rep sells Fleet only, seen from both sides of the relation
    assert response.status_code == 302
    assert list(rep.product_lines.all()) == [fleet]
    assert list(fleet.reps.all()) == [rep]
    assert not analytics.reps.exists()


def test_saving_the_user_page_unchanged_keeps_the_reps_product_lines(client, admin_user, rep):
    fleet = ProductLine.objects.create(name="Fleet", slug="fleet")
    rep.product_lines.add(fleet)
    client.force_login(admin_user)
    url = reverse("admin:crm_user_change", args=[rep.pk])

    response = client.post(url, changeform_data(client.get(url)))

    assert response.status_code == 302
    assert list(rep.product_lines.all()) == [fleet]
