"""A scoring model's rules in the admin: a line each on the model's page, grouped by kind,
and a page of their own that shows the fields of the rule's kind, saves through the same
change log and rescore, and refuses whatever the model's page refuses."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from crm.models import User
from leads.models import ActivityType, Lead
from scoring.lead_scoring import leads_score
from scoring.models import ChangeLog, RescoreJob, RescoreStatus, Rule, ScoringModel
from scoring.verification import scores_verify
from tests.admin_forms import changeform_data, inline_key
from tests.conftest import make_user
from tests.factories import ActivityFactory, LeadFactory, active_model, fit_rule, page_rule


def page_text(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", response.content.decode())).split())


def model_page(model: ScoringModel) -> str:
    return reverse("admin:scoring_scoringmodel_change", args=[model.pk])


def rule_page(rule: Rule, view: str = "change") -> str:
    return reverse(f"admin:scoring_rule_{view}", args=[rule.pk])


ADD_RULE = reverse("admin:scoring_rule_add")


class World:
    """A live model: a fit rule (+20 directors), an engagement rule (+10 a pricing view,
    once a day) and a negative one (-15 for students); a director who viewed pricing."""

    def __init__(self) -> None:
        self.model = active_model(name="Standard", surge_points=0)
        self.directors = fit_rule(
            self.model, 20, "seniority", "equals", "director", name="Directors"
        )
        self.pricing = page_rule(self.model, 10, "/pricing", max_per_day=1)
        self.students = fit_rule(
            self.model, -15, "job_title", "contains", "student", name="Students"
        )
        self.lead = LeadFactory(seniority="director")
        ActivityFactory(lead=self.lead, url="https://hotlist.example/pricing")
        leads_score(lead_ids=[self.lead.pk])
        assert self.score() == 30

    def score(self) -> int:
        return Lead.objects.get(pk=self.lead.pk).score


@pytest.fixture
def world(db) -> World:
    return World()


def state() -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    return {
        "rules": list(Rule.objects.order_by("pk").values()),
        "models": list(ScoringModel.objects.order_by("pk").values()),
        "log": ChangeLog.objects.count(),
        "jobs": RescoreJob.objects.count(),
    }


# --- The model's page: a line per rule, grouped --------------------------------------------


def test_the_model_page_lists_each_rule_on_a_line_in_its_group_with_a_link_to_its_page(
    client, marketer, world
):
    client.force_login(marketer)

    response = client.get(model_page(world.model))

    # Each group holds its rules: negative points make a negative rule, whatever the kind
    groups = {
        prefix: [form.instance for form in formset.forms]
        for formset in (inline.formset for inline in response.context["inline_admin_formsets"])
        if (prefix := formset.prefix).startswith("rules-")
    }
    assert groups == {
        "rules-fit": [world.directors],
        "rules-engagement": [world.pricing],
        "rules-negative": [world.students],
    }
    text = page_text(response)
    for heading in ("Fit rules: who they are", "Engagement rules: what they do", "Negative rules"):
        assert heading in text
    # A row reads as the rule's sentence, its kind, points and active, and links to its page
    assert "Directors +20 when seniority is Director Fit" in text
    assert "-15 when job title contains student Fit" in text
    source = response.content.decode()
    assert f'href="{rule_page(world.pricing)}"' in source
    # Only points and active are fields on the model's page: no condition, no field list
    assert 'name="rules-fit-0-points"' in source
    assert 'name="rules-fit-0-active"' in source
    assert "rules-fit-0-operator" not in source
    assert "rules-engagement-0-pattern" not in source
    assert "<optgroup" not in source


def test_the_model_pages_add_links_open_a_rule_form_with_its_model_and_kind_chosen(
    client, marketer, world
):
    client.force_login(marketer)

    source = client.get(model_page(world.model)).content.decode()

    for kind, label in (("fit", "Add a fit rule"), ("engagement", "Add an engagement rule")):
        link = html.escape(f"{ADD_RULE}?model={world.model.pk}&kind={kind}")
        assert f'<a class="addlink" href="{link}">{label}</a>' in source
    negative = html.escape(f"{ADD_RULE}?model={world.model.pk}&kind=fit&points=-10")
    assert f'href="{negative}">Add a negative fit rule</a>' in source

    form = client.get(ADD_RULE, {"model": world.model.pk, "kind": "engagement"}).context[
        "adminform"
    ]
    assert (form.form["model"].value(), form.form["kind"].value()) == (
        str(world.model.pk),
        "engagement",
    )


def test_a_rule_added_from_the_model_page_is_logged_rescored_and_leads_back_to_the_model(
    client, marketer, world, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    data = changeform_data(client.get(ADD_RULE, {"model": world.model.pk, "kind": "engagement"}))
    data.update(
        name="Demo request",
        points="40",
        activity_type=ActivityType.DEMO_REQUEST,
        match="contains",
    )
    ActivityFactory(lead=world.lead, type=ActivityType.DEMO_REQUEST, url="")
    leads_score(lead_ids=[world.lead.pk])

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(ADD_RULE, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert response["Location"] == model_page(world.model)
    rule = world.model.rules.get(name="Demo request")
    assert (rule.kind, rule.points, rule.activity_type) == ("engagement", 40, "demo_request")
    logged = ChangeLog.objects.get(object_type="rule", object_id=rule.pk)
    assert (logged.action, logged.by, logged.before) == ("create", marketer, None)
    job = RescoreJob.objects.get()
    assert (job.rule, job.status, job.requested_by) == (rule, RescoreStatus.DONE, marketer)
    assert world.score() == 70
    assert list(scores_verify()) == []


# --- The rule's page: the fields of its kind ------------------------------------------------


def test_the_rule_page_shows_its_kinds_fields_and_folds_the_others_for_a_browser_without_script(
    client, marketer, world
):
    client.force_login(marketer)

    fit = client.get(rule_page(world.directors)).content.decode()
    engagement = client.get(rule_page(world.pricing)).content.decode()

    def fieldset(source: str, kind: str) -> str:
        return re.search(
            rf'<fieldset class="[^"]*rule-kind-{kind}[^"]*".*?</fieldset>', source, re.S
        )[0]

    # The rule's own kind is open; the other's is folded in a <details> one can open
    assert "<details>" not in fieldset(fit, "fit")
    assert "<details>" in fieldset(fit, "engagement")
    assert "<details>" in fieldset(engagement, "fit")
    assert "<details>" not in fieldset(engagement, "engagement")
    # And the script that hides the other kind's fields, and follows a change of kind
    assert "js/rule-kind.js" in fit
    # The breadcrumbs go through the rule's model
    assert f'href="{model_page(world.model)}">Standard</a>' in fit


def test_a_rule_posted_as_the_other_kind_with_errors_opens_that_kinds_fields(
    client, marketer, world
):
    client.force_login(marketer)
    data = changeform_data(client.get(rule_page(world.directors)))
    data["kind"] = "engagement"

    response = client.post(rule_page(world.directors), data)

    assert response.status_code == 200
    assert "Choose the activity type this rule scores." in page_text(response)
    source = response.content.decode()
    open_fieldset = re.search(
        r'<fieldset class="[^"]*rule-kind-engagement[^"]*".*?</fieldset>', source, re.S
    )[0]
    assert "<details>" not in open_fieldset
    assert Rule.objects.get(pk=world.directors.pk).kind == "fit"


def test_changing_a_rule_on_its_page_logs_it_and_rescores_only_that_rule(
    client, marketer, world, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    data = changeform_data(client.get(rule_page(world.directors)))
    data["points"] = "35"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(rule_page(world.directors), data)

    assert response.status_code == 302
    assert response["Location"] == model_page(world.model)
    change = ChangeLog.objects.get(object_type="rule", action="change")
    assert (change.by, change.before["points"], change.after["points"]) == (marketer, 20, 35)
    job = RescoreJob.objects.get()
    assert (job.rule, job.status) == (world.directors, RescoreStatus.DONE)
    assert world.score() == 45
    assert list(scores_verify()) == []


def test_saving_a_rule_unchanged_logs_and_queues_nothing(client, marketer, world):
    client.force_login(marketer)
    data = changeform_data(client.get(rule_page(world.pricing)))

    response = client.post(rule_page(world.pricing), data)

    assert response.status_code == 302
    assert (ChangeLog.objects.count(), RescoreJob.objects.count()) == (0, 0)


def test_deleting_a_rule_on_its_page_logs_it_and_rescores_its_model(
    client, marketer, world, django_capture_on_commit_callbacks
):
    client.force_login(marketer)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(rule_page(world.pricing, "delete"), {"post": "yes"})

    assert response.status_code == 302
    assert response["Location"] == model_page(world.model)
    assert not Rule.objects.filter(pk=world.pricing.pk).exists()
    deleted = ChangeLog.objects.get(object_type="rule", action="delete")
    assert (deleted.by, deleted.object_id, deleted.after) == (marketer, world.pricing.pk, None)
    job = RescoreJob.objects.get()
    assert (job.rule, job.status) == (None, RescoreStatus.DONE)
    assert world.score() == 20
    assert list(scores_verify()) == []


def test_deleting_rules_of_two_models_from_the_rule_list_rescores_each_model_once(
    client, marketer, world, django_capture_on_commit_callbacks
):
    other = active_model(name="Fleet", is_default=False, priority=200)
    fleet = fit_rule(other, 5, "seniority", "equals", "director", name="Fleet directors")
    client.force_login(marketer)
    chosen = [world.pricing.pk, world.students.pk, fleet.pk]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:scoring_rule_changelist"),
            {"action": "delete_selected", "_selected_action": chosen, "post": "yes"},
        )

    assert response.status_code == 302
    assert not Rule.objects.filter(pk__in=chosen).exists()
    assert ChangeLog.objects.filter(object_type="rule", action="delete", by=marketer).count() == 3
    assert sorted(RescoreJob.objects.values_list("model_id", "rule_id")) == sorted(
        [(world.model.pk, None), (other.pk, None)]
    )
    assert world.score() == 20


def test_a_stored_rule_that_no_longer_holds_is_named_over_its_row_not_a_crash(
    client, marketer, world, django_capture_on_commit_callbacks
):
    # Given a rule testing a custom field since deleted: its row shows only points and active
    Rule.objects.filter(pk=world.directors.pk).update(field="custom.gone")
    client.force_login(marketer)
    data = changeform_data(client.get(model_page(world.model)))
    data["hot_from"] = "70"
    before = state()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(model_page(world.model), data)

    # Then the page says what is wrong with which field, and saves nothing
    assert response.status_code == 200
    assert "Field: " in page_text(response)
    assert "gone" in page_text(response)
    assert state() == before


def test_points_and_active_change_on_the_model_page_row(
    client, marketer, world, django_capture_on_commit_callbacks
):
    client.force_login(marketer)
    data = changeform_data(client.get(model_page(world.model)))
    data.pop(inline_key(data, "rules-", world.pricing.pk, "active"))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(model_page(world.model), data)

    assert response.status_code == 302
    assert not Rule.objects.get(pk=world.pricing.pk).active
    assert RescoreJob.objects.get().rule == world.pricing
    assert world.score() == 20


# --- Who may: the rule's page refuses what the model's page refuses ------------------------


def staff_with(*codenames: str) -> User:
    user = make_user("staffer", None, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.mark.parametrize(
    "codenames",
    [
        ("view_scoringmodel", "view_rule"),
        ("view_scoringmodel", "view_rule", "add_rule", "change_rule", "delete_rule"),
    ],
    ids=["reads-scoring", "changes-rules-but-only-reads-models"],
)
def test_who_may_not_change_a_model_may_not_add_change_or_delete_its_rules(
    client, world, codenames, django_capture_on_commit_callbacks
):
    # Given a staff member the model's page shows read-only
    client.force_login(staff_with(*codenames))
    opened = client.get(model_page(world.model))
    assert opened.status_code == 200
    assert not opened.context["has_change_permission"]
    before = state()

    # When they open a rule and post to its pages
    page = client.get(rule_page(world.directors))
    with django_capture_on_commit_callbacks(execute=True):
        posts = [
            client.post(
                rule_page(world.directors), {"name": "Pwned", "kind": "fit", "points": "99"}
            ),
            client.post(ADD_RULE, {"model": world.model.pk, "name": "Pwned", "kind": "fit"}),
            client.post(rule_page(world.directors, "delete"), {"post": "yes"}),
            client.post(
                reverse("admin:scoring_rule_changelist"),
                {
                    "action": "delete_selected",
                    "_selected_action": [world.directors.pk],
                    "post": "yes",
                },
            ),
        ]

    # Then the rule reads but cannot be changed, added or deleted, and nothing changed
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert "Add a fit rule" not in opened.content.decode()
    assert [response.status_code for response in posts[:3]] == [403, 403, 403]
    assert Rule.objects.filter(pk=world.directors.pk).exists()
    assert state() == before


@pytest.mark.parametrize("persona", ["rep", "outsider"])
def test_who_is_not_staff_is_sent_to_log_in_from_every_rule_page(
    client, world, request, persona, django_capture_on_commit_callbacks
):
    client.force_login(request.getfixturevalue(persona))
    before = state()

    with django_capture_on_commit_callbacks(execute=True):
        responses = [
            client.get(reverse("admin:scoring_rule_changelist")),
            client.get(rule_page(world.directors)),
            client.get(ADD_RULE),
            client.post(rule_page(world.directors), {"name": "Pwned", "points": "99"}),
            client.post(rule_page(world.directors, "delete"), {"post": "yes"}),
        ]

    login = reverse("admin:login")
    assert [(r.status_code, r["Location"].startswith(login)) for r in responses] == [
        (302, True)
    ] * len(responses)
    assert state() == before


def test_a_staff_member_without_scoring_permissions_sees_no_rule(client, world):
    client.force_login(staff_with())

    responses = [client.get(rule_page(world.directors)), client.get(ADD_RULE)]

    assert [r.status_code for r in responses] == [403, 403]


# --- The rest of the model's page: the latest rescores, the history in a line each ---------


def test_the_model_page_shows_the_rescores_under_way_and_the_latest_finished(
    client, marketer, world
):
    waiting = RescoreJob.objects.create(model=world.model, reason="Older, still queued")
    done = [
        RescoreJob.objects.create(model=world.model, reason=f"Done {n}", status=RescoreStatus.DONE)
        for n in range(8)
    ]
    client.force_login(marketer)

    page = client.get(model_page(world.model))
    rescores = client.get(reverse("admin:scoring_scoringmodel_rescores", args=[world.model.pk]))

    shown = next(i for i in page.context["inline_admin_formsets"] if i.formset.model is RescoreJob)
    expected = {waiting.pk, *(job.pk for job in done[-5:])}
    assert {form.instance.pk for form in shown.formset.forms} == expected
    assert {job["id"] for job in rescores.json()["jobs"]} == expected
    link = f"{reverse('admin:scoring_rescorejob_changelist')}?model__id__exact={world.model.pk}"
    assert link in page.content.decode()
