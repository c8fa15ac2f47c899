"""The permission matrix: every URL of the project, as each role of the North team,
against the South team's objects.

The URLs are read from the URL conf. Each one is either probed (reads and writes aimed
at South's rows, which must be refused with 403, 404 or a form error, leave every table
as it was, and show none of South's secrets) or exempt with the reason why no user's
team decides who may call it. A URL the matrix does not know fails
``test_every_url_is_in_the_matrix``: a new endpoint gets its probes when it is added.
The admin is walked the same way, from the admin site's registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import models
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from crm.models import ApiToken, Role, Team, TeamWebhook
from imports.models import ImportJob
from leads.company_merging import companies_merge
from leads.deals import deal_pipeline_ensure, deal_save
from leads.handoff_models import AssignmentKind, AssignmentRule, HandOff, LeadRating, Notification
from leads.merging import leads_merge
from leads.models import CompanyDuplicatePair, Deal, DuplicatePair, ExportJob, Note, Task
from leads.stages import stage_change_record
from leads.tracking_models import TrackingIdentity
from nurturing.models import AutoEnrollHold, Enrollment, Message, Sequence, Step
from reports.models import DigestPreference
from reports.pages.catalogue import REPORTS
from scoring.models import LeadScore, ScoreEntry
from tests.api_client import token_client
from tests.conftest import make_user
from tests.factories import ActivityFactory, CompanyFactory, LeadFactory, active_model, fit_rule
from workspace.models import SavedView

pytestmark = pytest.mark.django_db

ROLES = ("rep", "manager", "marketer")
REFUSED = (403, 404)
# What South's rows say, which no page or answer shown to North's rep or manager may hold.
SECRETS = (
    "Zebedee",
    "zebedee@southwind.example",
    "Southern secret task",
    "Southern loose task",
    "Southern secret note",
    "Southern secret deal",
    "Southern secret notice",
    "south.example/secret-page",
    "Southern token",
    "southern-secret-list",
    "Southern secret view",
)
APP_LABELS = ("crm", "leads", "scoring", "nurturing", "reports", "imports", "workspace", "auth")


# --- The world: North (the fixtures' team) and South -----------------------------------------


@pytest.fixture
def world(rep, other_rep, manager, marketer) -> SimpleNamespace:
    now = timezone.now()
    south = Team.objects.create(name="South")
    boss = make_user("south_manager", Role.MANAGER, team=south)
    south.manager = boss
    south.save(update_fields=["manager"])
    seller = make_user("south_rep", Role.REP, team=south)
    company = CompanyFactory(name="Southwind")
    lead = LeadFactory(
        owner=seller, company=company, first_name="Zebedee", email="zebedee@southwind.example"
    )
    change = stage_change_record(lead=lead, from_stage="mql", to_stage="sql", by=seller)
    merge = leads_merge(survivor_id=lead.pk, others=[LeadFactory(owner=seller).pk], by=boss)
    twin = LeadFactory(owner=seller, company=company)
    company_merge = companies_merge(
        survivor_id=company.pk, others=[CompanyFactory(name="Southwind Ltd").pk], by=boss
    )
    company_twin = LeadFactory(owner=seller, company=CompanyFactory(name="Southwind GmbH")).company
    model = active_model()
    sequence = Sequence.objects.create(name="Welcome")
    step = Step.objects.create(sequence=sequence, subject="Hi", body_text="Hello")
    enrollment = Enrollment.objects.create(lead=lead, sequence=sequence, next_due_at=now)
    _, south_key = ApiToken.objects.issue(user=seller, name="Southern token")
    return SimpleNamespace(
        team=south,
        south_manager=boss,
        south_rep=seller,
        company=company,
        lead=lead,
        near_lead=LeadFactory(owner=rep, first_name="Nora"),
        near_task=Task.objects.create(assignee=rep, title="Near task", due_at=now),
        activity=ActivityFactory(lead=lead, url="https://south.example/secret-page"),
        deal=deal_save(deal=Deal(lead=lead, name="Southern secret deal", amount=10)),
        deal_stage=deal_pipeline_ensure()[-1],
        task=Task.objects.create(
            lead=lead, assignee=seller, title="Southern secret task", due_at=now
        ),
        loose_task=Task.objects.create(assignee=seller, title="Southern loose task", due_at=now),
        note=Note.objects.create(lead=lead, author=seller, body="Southern secret note"),
        stage_change=change,
        handoff=HandOff.objects.create(lead=lead, stage_change=change, stage="sql", owner=seller),
        rating=LeadRating.objects.create(lead=lead, by=seller, rating="good"),
        notification=Notification.objects.create(
            user=seller, kind="handoff", title="Southern secret notice", lead=lead
        ),
        token=ApiToken.objects.get(user=seller),
        south_key=south_key,
        rule=AssignmentRule.objects.create(
            name="South fallback", kind=AssignmentKind.FALLBACK, owner=seller
        ),
        identity=TrackingIdentity.objects.create(kind="user_id", value="s-1", lead=lead),
        webhook=TeamWebhook.objects.create(team=south, name="#south", url="https://8.8.8.8/h"),
        digest=DigestPreference.objects.create(user=boss, weekly_digest=False),
        # South's manager shares a view with South: no one in North sees or changes it.
        saved_view=SavedView.objects.create(
            owner=boss, name="Southern secret view", query="q=zebedee", shared=True
        ),
        enrollment=enrollment,
        message=Message.objects.create(
            enrollment=enrollment, step=step, lead=lead, to_email=lead.email
        ),
        scoring_model=model,
        lead_score=LeadScore.objects.create(lead=lead, model=model, score=40),
        score_entry=ScoreEntry.objects.create(
            lead=lead, model=model, kind="manual", points=5, reason="Met at a fair", at=now
        ),
        scoring_rule=fit_rule(model, 10, "job_title", "contains", "CTO"),
        sequence=sequence,
        import_job=ImportJob.objects.create(
            kind="leads",
            file="southern-secret-list.csv",
            file_name="southern-secret-list.csv",
            headers=["Email"],
            failed=1,
            created_by=boss,
        ),
        # South's manager's export of "zebedee", written: no one else sees or downloads it.
        export_job=ExportJob.objects.create(
            requested_by=boss,
            source="workspace",
            query="q=zebedee",
            file_format="csv",
            columns=["id", "first_name"],
            status="done",
            file_name="export-southern-secret-list.csv",
        ),
        hold=AutoEnrollHold.objects.create(lead=lead, reason="Imported history"),
        merge=merge,
        pair=DuplicatePair.objects.create(
            lead_a=lead, lead_b=twin, reasons=[{"kind": "phone", "score": 0.9}], score=0.9
        ),
        company_merge=company_merge,
        company_pair=CompanyDuplicatePair.objects.create(
            company_a=company,
            company_b=company_twin,
            reasons=[{"kind": "name", "score": 1.0}],
            score=1.0,
        ),
    )


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of the project's tables, but the touch time of API tokens (the probes'
    own tokens are used)."""
    rows = {}
    for model in apps.get_models():
        if model._meta.app_label not in APP_LABELS or model._meta.proxy:
            continue
        values = list(model.objects.order_by("pk").values())
        if model is ApiToken:
            values = [{k: v for k, v in row.items() if k != "last_used_at"} for row in values]
        rows[model._meta.label] = values
    return rows


def person(role: str, request: pytest.FixtureRequest):
    return request.getfixturevalue(role)


# --- The URL conf -------------------------------------------------------------------------


def url_patterns(
    patterns: list[Any] | None = None, prefix: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    """(route, pattern) for every URL of the project, the admin's included."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def matrix_key(route: str, pattern: URLPattern) -> str:
    return pattern.name or route


# --- Probes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request aimed at South. ``refused`` are the statuses that count as refusal;
    a 200 also passes when ``refused`` names it (a list, say) but must hold no secret."""

    method: str
    path: str
    data: dict[str, Any] | None = None
    roles: tuple[str, ...] = ("rep", "manager")
    refused: tuple[int, ...] = REFUSED


@dataclass(frozen=True)
class Exempt:
    why: str


def api(path: str) -> str:
    return f"/api/v1/{path}"


def _due() -> str:
    return timezone.now().isoformat()


Probe = Callable[[SimpleNamespace], list[Call]]
ALL = ROLES
LISTED = (200, 400)  # a list answers with what the caller sees, or refuses the filter
EXPORTED = (200, 403)  # an export holds what the caller sees, or is not theirs to make

API: dict[str, Probe | Exempt] = {
    "api-token-list": lambda w: [Call("GET", api("tokens/"), roles=ALL, refused=(200,))],
    "api-token-detail": lambda w: [Call("GET", api(f"tokens/{w.token.pk}/"), roles=ALL)],
    "api-token-revoke": lambda w: [
        Call("POST", api(f"tokens/{w.token.pk}/revoke/"), {}, roles=ALL)
    ],
    "api-lead-list": lambda w: [
        Call("GET", api("leads/?search=zebedee"), refused=(200,)),
        Call("GET", api(f"leads/?owner={w.south_rep.pk}"), refused=(200,)),
        Call(
            "POST",
            api("leads/"),
            {"email": "x@example.com", "owner": w.south_rep.pk},
            refused=(400,),
        ),
        Call("POST", api("leads/"), {"email": w.lead.email}, refused=(409,)),
    ],
    "api-lead-detail": lambda w: [
        Call("GET", api(f"leads/{w.lead.pk}/")),
        Call("PUT", api(f"leads/{w.lead.pk}/"), {"email": "pwned@example.com"}),
        Call("PATCH", api(f"leads/{w.lead.pk}/"), {"first_name": "Pwned"}),
        Call("PATCH", api(f"leads/{w.near_lead.pk}/"), {"owner": w.south_rep.pk}, refused=(400,)),
    ],
    "api-lead-score": lambda w: [Call("GET", api(f"leads/{w.lead.pk}/score/"))],
    # Reps export nothing (403); a manager's file holds only what they see.
    "api-lead-export": lambda w: [
        Call("GET", api("leads/export/?format=csv"), refused=EXPORTED),
        Call("GET", api(f"leads/export/?owner={w.south_rep.pk}"), refused=EXPORTED),
        # A job is refused before it is stored: no role, or a column that is none.
        Call("POST", api("leads/export/?search=zebedee&columns=nope"), refused=(400, 403)),
    ],
    # Reps export nothing (403); the others see only the jobs they asked for (admins all).
    "api-export-job-list": lambda w: [
        Call("GET", api("export-jobs/"), roles=ALL, refused=(200, 403))
    ],
    "api-export-job-detail": lambda w: [
        Call("GET", api(f"export-jobs/{w.export_job.pk}/"), roles=ALL)
    ],
    "api-export-job-download": lambda w: [
        Call("GET", api(f"export-jobs/{w.export_job.pk}/download/"), roles=ALL)
    ],
    "api-lead-transition": lambda w: [
        Call("POST", api(f"leads/{w.lead.pk}/transition/"), {"stage": "customer"})
    ],
    "api-lead-merge": lambda w: [
        Call("POST", api(f"leads/{w.near_lead.pk}/merge/"), {"others": [w.lead.pk]}),
        Call("POST", api(f"leads/{w.lead.pk}/merge/"), {"others": [w.near_lead.pk]}),
        Call("GET", api(f"leads/{w.lead.pk}/merge/?others={w.near_lead.pk}")),
        Call("GET", api(f"leads/{w.near_lead.pk}/merge/?others={w.lead.pk}")),
    ],
    "api-lead-merge-list": lambda w: [Call("GET", api("lead-merges/"), refused=(200, 403))],
    "api-lead-merge-detail": lambda w: [Call("GET", api(f"lead-merges/{w.merge.pk}/"))],
    "api-lead-merge-undo": lambda w: [Call("POST", api(f"lead-merges/{w.merge.pk}/undo/"), {})],
    "api-company-list": lambda w: [Call("GET", api("companies/"), refused=(200,))],
    # A company carrying South's lead is merged by South's manager, marketers and admins.
    "api-company-merge-list": lambda w: [
        Call("GET", api("company-merges/"), refused=(200, 403)),
        Call(
            "POST",
            api("company-merges/"),
            {"survivor": w.near_lead.company_id, "others": [w.company.pk]},
            refused=(403,),
        ),
        Call(
            "POST",
            api("company-merges/"),
            {"survivor": w.company.pk, "others": [w.near_lead.company_id]},
            refused=(403,),
        ),
    ],
    "api-company-merge-preview": lambda w: [
        Call(
            "GET",
            api(f"company-merges/preview/?survivor={w.near_lead.company_id}&others={w.company.pk}"),
            refused=(403,),
        )
    ],
    "api-company-merge-detail": lambda w: [
        Call("GET", api(f"company-merges/{w.company_merge.pk}/"))
    ],
    "api-company-merge-undo": lambda w: [
        Call("POST", api(f"company-merges/{w.company_merge.pk}/undo/"), {})
    ],
    "api-company-detail": lambda w: [
        Call("PUT", api(f"companies/{w.company.pk}/"), {"name": "Pwned"}),
        Call("PATCH", api(f"companies/{w.company.pk}/"), {"name": "Pwned"}),
    ],
    "api-activity-list": lambda w: [
        Call("GET", api(f"activities/?lead={w.lead.pk}"), refused=(200,)),
        Call("POST", api("activities/"), {"lead": w.lead.pk, "type": "call"}, refused=(400,)),
    ],
    "api-activity-bulk": lambda w: [
        Call(
            "POST",
            api("activities/bulk/"),
            {"activities": [{"lead": w.lead.pk, "type": "call"}]},
            refused=(400,),
        ),
    ],
    "api-activity-detail": lambda w: [Call("GET", api(f"activities/{w.activity.pk}/"))],
    "api-deal-list": lambda w: [
        Call("GET", api("deals/"), refused=(200,)),
        Call("POST", api("deals/"), {"lead": w.lead.pk, "name": "D"}, refused=(400, 403)),
    ],
    "api-deal-detail": lambda w: [
        Call("GET", api(f"deals/{w.deal.pk}/")),
        Call("PUT", api(f"deals/{w.deal.pk}/"), {"lead": w.lead.pk, "name": "Pwned"}),
        Call("PATCH", api(f"deals/{w.deal.pk}/"), {"name": "Pwned"}),
        Call("PATCH", api(f"deals/{w.deal.pk}/"), {"name": "Pwned"}, roles=("marketer",)),
    ],
    "api-task-list": lambda w: [
        Call("GET", api(f"tasks/?assignee={w.south_rep.pk}"), refused=(200,)),
        Call(
            "POST",
            api("tasks/"),
            {"lead": w.lead.pk, "title": "T", "due_at": _due()},
            refused=(400,),
        ),
        Call(
            "POST",
            api("tasks/"),
            {"assignee": w.south_rep.pk, "title": "T", "due_at": _due()},
            refused=(400,),
        ),
        Call(
            "POST",
            api("tasks/"),
            {"assignee": w.south_rep.pk, "title": "T", "due_at": _due()},
            roles=("marketer",),
            refused=(403,),
        ),
    ],
    "api-task-detail": lambda w: [
        *[
            call
            for task in (w.task, w.loose_task)
            for call in (
                Call("GET", api(f"tasks/{task.pk}/")),
                Call("PUT", api(f"tasks/{task.pk}/"), {"title": "Pwned", "due_at": _due()}),
                Call("PATCH", api(f"tasks/{task.pk}/"), {"title": "Pwned"}),
                Call("PATCH", api(f"tasks/{task.pk}/"), {"title": "Pwned"}, roles=("marketer",)),
            )
        ],
        Call(
            "PATCH", api(f"tasks/{w.near_task.pk}/"), {"assignee": w.south_rep.pk}, refused=(400,)
        ),
    ],
    "api-note-list": lambda w: [
        Call("GET", api("notes/"), refused=(200,)),
        Call("POST", api("notes/"), {"lead": w.lead.pk, "body": "Hi"}, refused=(400, 403)),
    ],
    "api-note-detail": lambda w: [
        Call("GET", api(f"notes/{w.note.pk}/")),
        Call("PATCH", api(f"notes/{w.note.pk}/"), {"body": "Pwned"}),
        Call("PATCH", api(f"notes/{w.note.pk}/"), {"body": "Pwned"}, roles=("marketer",)),
    ],
    "api-scoring-model-list": lambda w: [
        Call("POST", api("scoring-models/"), {"name": "Mine"}, refused=(403,))
    ],
    "api-scoring-model-detail": lambda w: [
        Call("PATCH", api(f"scoring-models/{w.scoring_model.pk}/"), {"name": "X"}, refused=(403,))
    ],
    # Who may make, publish and roll back versions: marketers and admins (403 for others).
    "api-scoring-model-draft": lambda w: [
        Call("POST", api(f"scoring-models/{w.scoring_model.pk}/draft/"), {}, refused=(403,))
    ],
    "api-scoring-model-publish": lambda w: [
        Call("POST", api(f"scoring-models/{w.scoring_model.pk}/publish/"), {}, refused=(403,))
    ],
    "api-scoring-model-suggested-weights": lambda w: [
        Call("GET", api(f"scoring-models/{w.scoring_model.pk}/suggested-weights/"), refused=(403,))
    ],
    "api-scoring-model-suggested-weights-draft": lambda w: [
        Call(
            "POST",
            api(f"scoring-models/{w.scoring_model.pk}/suggested-weights/draft/"),
            {},
            refused=(403,),
        )
    ],
    "api-scoring-model-predictive-weights": lambda w: [
        Call("GET", api(f"scoring-models/{w.scoring_model.pk}/predictive-weights/"), refused=(403,))
    ],
    "api-scoring-model-predictive-weights-draft": lambda w: [
        Call(
            "POST",
            api(f"scoring-models/{w.scoring_model.pk}/predictive-weights/draft/"),
            {},
            refused=(403,),
        )
    ],
    "api-scoring-model-roll-back": lambda w: [
        Call("POST", api(f"scoring-models/{w.scoring_model.pk}/roll-back/"), {}, refused=(403,))
    ],
    "api-rule-list": lambda w: [
        Call(
            "POST",
            api(f"scoring-models/{w.scoring_model.pk}/rules/"),
            {"name": "R"},
            refused=(403,),
        ),
    ],
    "api-rule-detail": lambda w: [
        Call(
            "PATCH",
            api(f"scoring-models/{w.scoring_model.pk}/rules/{w.scoring_rule.pk}/"),
            {"points": 99},
            refused=(403,),
        ),
        Call(
            "DELETE",
            api(f"scoring-models/{w.scoring_model.pk}/rules/{w.scoring_rule.pk}/"),
            refused=(403,),
        ),
    ],
    # Reps import nothing (403); a manager lists and reaches only their own imports.
    "api-import-list": lambda w: [
        Call("GET", api("imports/"), refused=(200, 403)),
        Call("GET", api("imports/?status=queued&kind=leads"), refused=(200, 403)),
        Call("POST", api("imports/"), {"kind": "leads"}, refused=(403, 415)),
    ],
    "api-import-detail": lambda w: [Call("GET", api(f"imports/{w.import_job.pk}/"))],
    "api-import-preview": lambda w: [Call("GET", api(f"imports/{w.import_job.pk}/preview/"))],
    "api-import-errors": lambda w: [Call("GET", api(f"imports/{w.import_job.pk}/errors.csv"))],
    "api-import-undo": lambda w: [Call("POST", api(f"imports/{w.import_job.pk}/undo/"), {})],
    "api-import-fields": lambda w: [
        Call("GET", api("imports/fields/?kind=leads"), refused=(200, 403))
    ],
    "api-not-found": lambda w: [Call("GET", api(f"leads/{w.lead.pk}/notes/"), roles=ALL)],
}

WEB: dict[str, Probe | Exempt] = {
    "home": lambda w: [Call("GET", "/", refused=(200,))],
    "lead-detail": lambda w: [Call("GET", f"/leads/{w.lead.pk}/")],
    "lead-score-json": lambda w: [Call("GET", f"/leads/{w.lead.pk}/score.json")],
    "lead-activity": lambda w: [Call("GET", f"/leads/{w.lead.pk}/activity/")],
    "lead-log-touch": lambda w: [
        Call("POST", f"/leads/{w.lead.pk}/touches/", {"touch-kind": "call"}, roles=ALL)
    ],
    "lead-add-note": lambda w: [
        Call("POST", f"/leads/{w.lead.pk}/notes/", {"note-body": "Hi"}, roles=ALL)
    ],
    "lead-add-task": lambda w: [
        Call("POST", f"/leads/{w.lead.pk}/tasks/", task_form(w.south_rep), roles=ALL),
        Call("POST", f"/leads/{w.near_lead.pk}/tasks/", task_form(w.south_rep), refused=(400,)),
    ],
    "lead-change-stage": lambda w: [
        Call("POST", f"/leads/{w.lead.pk}/stage/", {"stage-stage": "customer"}, roles=ALL)
    ],
    "lead-take": lambda w: [Call("POST", f"/leads/{w.lead.pk}/take/", {}, roles=ALL)],
    "lead-rate": lambda w: [
        Call("POST", f"/leads/{w.lead.pk}/rating/", {"rating-rating": "bad"}, roles=ALL)
    ],
    "handoff-accept": lambda w: [Call("POST", f"/handoffs/{w.handoff.pk}/accept/", {}, roles=ALL)],
    "handoff-reject": lambda w: [
        Call("POST", f"/handoffs/{w.handoff.pk}/reject/", {"reject-reason": "No"}, roles=ALL)
    ],
    "my-day-task-done": lambda w: [
        Call("POST", f"/my-day/tasks/{task.pk}/done/", {}, roles=ALL)
        for task in (w.task, w.loose_task)
    ],
    # The queue holds only the person's own work; marketers have none (403).
    "next-up": lambda w: [
        Call("GET", "/next/", refused=(200,)),
        Call("GET", f"/next/?lead={w.lead.pk}", refused=(200,)),
        Call("GET", "/next/", roles=("marketer",)),
    ],
    "next-up-outcome": lambda w: [
        Call("POST", f"/next/{w.lead.pk}/outcome/", {"outcome": "connected"}, roles=ALL)
    ],
    "next-up-snooze": lambda w: [
        Call("POST", f"/next/{w.lead.pk}/snooze/", {"until": "hour"}, roles=ALL)
    ],
    "next-up-skip": lambda w: [
        Call("POST", f"/next/{w.lead.pk}/skip/", {"reason": "not_now"}, roles=ALL)
    ],
    "lead-list": lambda w: [
        Call("GET", "/leads/?q=zebedee", refused=LISTED),
        Call("GET", f"/leads/?owner={w.south_rep.pk}", refused=LISTED),
    ],
    "lead-count": lambda w: [
        Call("GET", "/leads/count/?q=zebedee", refused=(200, 400)),
        Call("GET", f"/leads/count/?owner={w.south_rep.pk}", refused=LISTED),
    ],
    "lead-export": lambda w: [
        Call("GET", "/leads/export.csv", refused=EXPORTED),
        Call("GET", "/leads/export.csv?q=zebedee", refused=EXPORTED),
        Call("GET", f"/leads/export.csv?owner={w.south_rep.pk}", refused=(400, 403)),
    ],
    # An export job of another team's owner is refused before it is stored: the list
    # answers with the filter's error (after a redirect), or 403 for reps. The list of
    # past exports holds the caller's own (an admin's all), and is refused to reps.
    "lead-export-jobs": lambda w: [
        Call("GET", "/leads/exports/", roles=ALL, refused=(200, 403)),
        Call(
            "POST",
            "/leads/exports/",
            {"format": "xlsx", "query": f"owner={w.south_rep.pk}"},
            refused=(302, 403),
        ),
    ],
    "lead-export-job": lambda w: [Call("GET", f"/leads/exports/{w.export_job.pk}/", roles=ALL)],
    "lead-export-job-download": lambda w: [
        Call("GET", f"/leads/exports/{w.export_job.pk}/download/", roles=ALL)
    ],
    "lead-bulk": lambda w: [
        Call(
            "POST",
            "/leads/bulk/",
            {"action": "stage", "stage": "customer", "lead": [w.lead.pk]},
            roles=ALL,
            refused=(200, 302, 400),
        ),
        Call(
            "POST",
            "/leads/bulk/",
            {"action": "assign", "owner": w.south_rep.pk, "lead": [w.near_lead.pk]},
            refused=(200, 302, 400),
        ),
    ],
    # A view shared in South is not found in North; saving one saves the caller's own.
    "saved-view-create": lambda w: [
        Call(
            "POST",
            "/leads/views/",
            {"name": "North list", "shared": "on"},
            roles=("rep",),
            refused=(400,),
        ),
    ],
    "saved-view-open": lambda w: [Call("GET", f"/leads/views/{w.saved_view.pk}/", roles=ALL)],
    "saved-view-rename": lambda w: [
        Call("POST", f"/leads/views/{w.saved_view.pk}/rename/", {"name": "Mine now"}, roles=ALL)
    ],
    "saved-view-delete": lambda w: [
        Call("POST", f"/leads/views/{w.saved_view.pk}/delete/", roles=ALL)
    ],
    "search": lambda w: [
        Call("GET", "/search/?q=zebedee", refused=(200,)),
        Call("GET", "/search/?q=zebedee%40southwind", refused=(200,)),
        Call("GET", "/search/?q=southern+secret+deal", refused=(200,)),
        Call("GET", "/search/?q=southwind", refused=(200,)),
    ],
    # Every company is read by everyone with a role; of its leads, deals and activity
    # only those in view show, so South's company page holds none of South's secrets.
    "company-detail": lambda w: [Call("GET", f"/companies/{w.company.pk}/", refused=(200,))],
    "pipeline": lambda w: [Call("GET", f"/pipeline/?owner={w.south_rep.pk}", refused=LISTED)],
    "pipeline-move": lambda w: [
        Call(
            "POST",
            "/pipeline/move/",
            {"lead": w.lead.pk, "stage": "customer"},
            roles=ALL,
            refused=(400, 403, 404),
        ),
    ],
    "lead-add-deal": lambda w: [
        Call("POST", f"/leads/{w.lead.pk}/deals/", deal_form(w), roles=ALL),
        Call(
            "POST",
            f"/leads/{w.near_lead.pk}/deals/",
            {**deal_form(w), "deal-owner": w.south_rep.pk},
            refused=(400,),
        ),
    ],
    "deal-change": lambda w: [
        Call(
            "POST",
            f"/deals/{w.deal.pk}/change/",
            {f"deal-{w.deal.pk}-{name}": value for name, value in deal_form(w, prefix="").items()},
            roles=ALL,
        )
    ],
    "deal-win": lambda w: [Call("POST", f"/deals/{w.deal.pk}/won/", {}, roles=ALL)],
    "deal-lose": lambda w: [
        Call(
            "POST",
            f"/deals/{w.deal.pk}/lost/",
            {f"lost-{w.deal.pk}-reason": "No decision"},
            roles=ALL,
        )
    ],
    "deals": lambda w: [
        Call("GET", "/deals/", refused=(200,)),
        Call("GET", f"/deals/?owner={w.south_rep.pk}", refused=LISTED),
    ],
    "deals-move": lambda w: [
        Call(
            "POST",
            "/deals/move/",
            {"deal": w.deal.pk, "stage": w.deal_stage.pk},
            roles=ALL,
            refused=(403, 404),
        ),
    ],
    "tasks": lambda w: [Call("GET", f"/tasks/?assignee={w.south_rep.pk}", refused=LISTED)],
    "imports": lambda w: [Call("GET", "/imports/", refused=(200, 403))],
    "import-new": lambda w: [Call("POST", "/imports/new/", {"kind": "leads"}, refused=(400, 403))],
    "import-detail": lambda w: [Call("GET", f"/imports/{w.import_job.pk}/")],
    "import-map": lambda w: [
        Call("GET", f"/imports/{w.import_job.pk}/map/"),
        Call("POST", f"/imports/{w.import_job.pk}/map/", {"column_0": "email"}),
    ],
    "import-values": lambda w: [
        Call("POST", f"/imports/{w.import_job.pk}/values/", {"word-stage-1": "x"})
    ],
    "import-progress": lambda w: [Call("GET", f"/imports/{w.import_job.pk}/progress/")],
    "import-start": lambda w: [Call("POST", f"/imports/{w.import_job.pk}/start/", {})],
    "import-resume": lambda w: [Call("POST", f"/imports/{w.import_job.pk}/resume/", {})],
    "import-undo": lambda w: [Call("POST", f"/imports/{w.import_job.pk}/undo/", {})],
    "import-errors": lambda w: [Call("GET", f"/imports/{w.import_job.pk}/errors.csv")],
    "tasks-complete": lambda w: [
        Call("POST", f"/tasks/{task.pk}/complete/", {}, roles=ALL)
        for task in (w.task, w.loose_task)
    ],
    "tasks-snooze": lambda w: [
        Call("POST", f"/tasks/{task.pk}/snooze/", {"until": "tomorrow"}, roles=ALL)
        for task in (w.task, w.loose_task)
    ],
    "tasks-reassign": lambda w: [
        *[
            Call("POST", f"/tasks/{task.pk}/reassign/", {"assignee": w.south_rep.pk}, roles=ALL)
            for task in (w.task, w.loose_task)
        ],
        Call(
            "POST",
            f"/tasks/{w.near_task.pk}/reassign/",
            {"assignee": w.south_rep.pk},
            roles=("manager",),
            refused=(400, 403),
        ),
    ],
    "notifications": lambda w: [Call("GET", "/notifications/", roles=ALL, refused=(200,))],
    "notifications-read-all": lambda w: [
        Call("POST", "/notifications/read/", {}, roles=ALL, refused=(200, 302))
    ],
    "notification-read": lambda w: [
        Call("POST", f"/notifications/{w.notification.pk}/read/", {}, roles=ALL)
    ],
    # The scoring studio: marketers and admins only (scoring.permissions), 403 for others.
    "studio": lambda w: [Call("GET", "/studio/", refused=(403,))],
    "studio-model": lambda w: [
        Call("GET", f"/studio/models/{w.scoring_model.pk}/", refused=(403,))
    ],
    "studio-reach": lambda w: [
        Call("GET", f"/studio/models/{w.scoring_model.pk}/reach/", refused=(403,))
    ],
    "studio-preview": lambda w: [
        Call("GET", f"/studio/models/{w.scoring_model.pk}/preview/", refused=(403,))
    ],
    "studio-rule": lambda w: [
        Call(
            "POST",
            f"/studio/models/{w.scoring_model.pk}/rules/{w.scoring_rule.pk}/",
            {f"rule-{w.scoring_rule.pk}-points": "99"},
            refused=(403,),
        )
    ],
    "studio-rule-edit": lambda w: [
        Call(
            method,
            f"/studio/models/{w.scoring_model.pk}/rules/{w.scoring_rule.pk}/edit/",
            {"points": "99", "field": "country", "operator": "equals", "value": "DE"},
            refused=(403,),
        )
        for method in ("GET", "POST")
    ],
    "studio-rule-delete": lambda w: [
        Call(
            "POST",
            f"/studio/models/{w.scoring_model.pk}/rules/{w.scoring_rule.pk}/delete/",
            {},
            refused=(403,),
        )
    ],
    "studio-rule-add": lambda w: [
        Call(
            method,
            f"/studio/models/{w.scoring_model.pk}/rules/new/{kind}/",
            {"points": "99", "field": "country", "operator": "equals", "value": "DE"},
            refused=(403,),
        )
        for method in ("GET", "POST")
        for kind in ("fit", "engagement")
    ],
    "studio-rule-count": lambda w: [
        Call(
            "GET",
            f"/studio/models/{w.scoring_model.pk}/rules/count/fit/",
            {"points": "1", "field": "country", "operator": "equals", "value": "DE"},
            refused=(403,),
        )
    ],
    "studio-suggestions": lambda w: [
        Call("GET", f"/studio/models/{w.scoring_model.pk}/suggestions/", refused=(403,))
    ],
    "studio-suggestions-draft": lambda w: [
        Call("POST", f"/studio/models/{w.scoring_model.pk}/suggestions/draft/", {}, refused=(403,))
    ],
    "studio-predictive": lambda w: [
        Call("GET", f"/studio/models/{w.scoring_model.pk}/predictive/", refused=(403,))
    ],
    "studio-predictive-train": lambda w: [
        Call("POST", f"/studio/models/{w.scoring_model.pk}/predictive/train/", {}, refused=(403,))
    ],
    "studio-predictive-weights": lambda w: [
        Call("GET", f"/studio/models/{w.scoring_model.pk}/predictive/weights/", refused=(403,))
    ],
    "studio-predictive-weights-draft": lambda w: [
        Call(
            "POST",
            f"/studio/models/{w.scoring_model.pk}/predictive/weights/draft/",
            {},
            refused=(403,),
        )
    ],
    "studio-duplicate": lambda w: [
        Call("POST", f"/studio/models/{w.scoring_model.pk}/duplicate/", {}, refused=(403,))
    ],
    "studio-thresholds": lambda w: [
        Call(
            "POST",
            f"/studio/models/{w.scoring_model.pk}/thresholds/",
            {
                "mql_threshold": 1,
                "sql_threshold": 2,
                "hot_from": 3,
                "warm_from": 1,
                "base_score": 0,
            },
            refused=(403,),
        )
    ],
    "studio-thresholds-compare": lambda w: [
        Call("GET", f"/studio/models/{w.scoring_model.pk}/thresholds/compare/", refused=(403,))
    ],
    "studio-publish": lambda w: [
        Call("POST", f"/studio/models/{w.scoring_model.pk}/publish/", {}, refused=(403,))
    ],
    "studio-roll-back": lambda w: [
        Call("POST", f"/studio/models/{w.scoring_model.pk}/roll-back/", {}, refused=(403,))
    ],
    "reports": lambda w: [Call("GET", "/reports/", refused=(200,))],
    # The digest form changes the caller's own preference only: it names no one.
    "reports-digest": lambda w: [Call("GET", "/reports/digest/", refused=(200,))],
    "reports-page": lambda w: [
        Call("GET", f"/reports/{slug}/?{field}={value}", refused=LISTED)
        for slug in REPORTS
        for field, value in (("owner", w.south_rep.pk), ("team", w.team.pk))
    ],
}

PUBLIC: dict[str, Exempt] = {
    "healthz": Exempt("liveness of the database and broker; no rows"),
    "favicon": Exempt("the site's icon"),
    "login": Exempt("signing in"),
    "logout": Exempt("signing out"),
    "api-schema": Exempt("the published description of the API, the same for everyone"),
    "api-docs": Exempt("the page that renders the schema"),
    "form-submit": Exempt(
        "public web forms, keyed by the form's key: they create or update a lead by email "
        "and answer the same whatever exists (tests/test_forms_submissions.py)"
    ),
    "nurture-open": Exempt("signed per-message token (tests/test_nurture_http.py)"),
    "nurture-click": Exempt(
        "signed per-message token; redirects only to the template's links "
        "(tests/test_nurture_link_injection.py)"
    ),
    "nurture-unsubscribe": Exempt("signed per-message token (tests/test_nurture_http.py)"),
    "nurture-bounce": Exempt("the mail provider's webhook, keyed by NURTURE_BOUNCE_SECRET"),
    "api-deal-stage-list": Exempt("the deal pipeline's stages, the same for every team"),
    "api-deal-stage-detail": Exempt("the deal pipeline's stages, the same for every team"),
    "api-lost-reason-list": Exempt("the pick-list of lost reasons, the same for every team"),
    "api-lost-reason-detail": Exempt("the pick-list of lost reasons, the same for every team"),
}
TRACKING = Exempt(
    "the tracking API, authenticated by a site's write key rather than a user; it records "
    "events and answers nothing about leads (tests/test_tracking_endpoint.py)"
)


def deal_form(w: SimpleNamespace, prefix: str = "deal-") -> dict[str, Any]:
    fields = {"name": "Spy", "amount": "1", "currency": "EUR", "stage": w.deal_stage.pk}
    return {f"{prefix}{name}": value for name, value in fields.items()}


def task_form(assignee) -> dict[str, Any]:
    due = timezone.localtime() + timezone.timedelta(days=1)
    return {
        "task-title": "Spy",
        "task-kind": "call",
        "task-due_at": f"{due:%Y-%m-%dT%H:%M}",
        "task-assignee": assignee.pk,
    }


def entry_for(route: str, pattern: URLPattern) -> Probe | Exempt | None:
    key = matrix_key(route, pattern)
    if key in API:
        return API[key]
    if key in WEB:
        return WEB[key]
    if key in PUBLIC:
        return PUBLIC[key]
    if route.startswith("v1/"):
        return TRACKING
    return None


def non_admin_patterns() -> list[tuple[str, URLPattern]]:
    return [(route, p) for route, p in url_patterns() if not route.startswith("admin/")]


def test_every_url_is_in_the_matrix():
    unknown = sorted(
        {matrix_key(route, p) for route, p in non_admin_patterns() if entry_for(route, p) is None}
    )
    assert not unknown, (
        f"URLs the permission matrix does not know: {unknown}. Add probes of another team's "
        "objects to API or WEB in tests/test_permission_matrix.py, or a reason to PUBLIC."
    )


def test_the_matrix_names_no_url_that_is_gone():
    keys = {matrix_key(route, p) for route, p in non_admin_patterns()}

    assert set(API) | set(WEB) | set(PUBLIC) <= keys


PROBED = sorted({*API, *WEB})


def _send(client: Any, call: Call, *, is_api: bool) -> Any:
    method = getattr(client, call.method.lower())
    if call.method == "GET":
        return method(call.path)
    if is_api:
        return method(call.path, call.data or {}, format="json")
    return method(call.path, call.data or {})


def _probed_roles() -> list[tuple[str, str]]:
    """Each URL with each role it has something to refuse (a marketer sees every lead, so
    a read of South's leads refuses them nothing). The probes only build requests, so a
    stand-in world tells which roles they name."""
    stand_in = MagicMock()
    return [
        (key, role)
        for key in PROBED
        for role in ROLES
        if any(role in call.roles for call in (API | WEB)[key](stand_in))
    ]


@pytest.mark.parametrize(("key", "role"), _probed_roles())
def test_role_is_refused_another_teams_objects(request, world, key, role):
    user = person(role, request)
    is_api = key in API
    calls = [call for call in (API | WEB)[key](world) if role in call.roles]
    if is_api:
        client = token_client(user)
    else:
        client = Client()
        client.force_login(user)
    before = snapshot()

    for call in calls:
        response = _send(client, call, is_api=is_api)

        assert response.status_code in call.refused, (call, response.status_code)
        if role != "marketer":
            raw = b"".join(response.streaming_content) if response.streaming else response.content
            body = raw.decode(errors="replace")
            leaked = [secret for secret in SECRETS if secret in body]
            assert not leaked, (call, leaked)
    assert snapshot() == before


# --- The admin ----------------------------------------------------------------------------

# The admin URLs that are not a registered model's own.
ADMIN_SITE = {
    "index",
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "autocomplete",
    "jsi18n",
    "view_on_site",
    "app_list",
    "admin/(?P<url>.*)$",
}
ADMIN_VIEWS = ("changelist", "add", "history", "delete", "change")
# Custom admin views, each with its probe.
ADMIN_CUSTOM: dict[str, Callable[[SimpleNamespace], str]] = {
    "auth_user_password_change": lambda w: f"/admin/crm/user/{w.south_rep.pk}/password/",
    "scoring_scoringmodel_preview": (
        lambda w: f"/admin/scoring/scoringmodel/{w.scoring_model.pk}/preview/"
    ),
    "scoring_scoringmodel_suggested_weights": (
        lambda w: f"/admin/scoring/scoringmodel/{w.scoring_model.pk}/suggested-weights/"
    ),
    "scoring_scoringmodel_rescores": (
        lambda w: f"/admin/scoring/scoringmodel/{w.scoring_model.pk}/rescores.json"
    ),
    "nurturing_sequence_stats": lambda w: f"/admin/nurturing/sequence/{w.sequence.pk}/stats/",
    "nurturing_sequence_enroll": lambda w: f"/admin/nurturing/sequence/{w.sequence.pk}/enroll/",
    "imports_importjob_errors": lambda w: f"/admin/imports/importjob/{w.import_job.pk}/errors.csv",
    "leads_duplicatepair_merge": lambda w: f"/admin/leads/duplicatepair/{w.pair.pk}/merge/",
    "leads_company_merge": (
        lambda w: f"/admin/leads/company/merge/?ids={w.company.pk},{w.near_lead.company_id}"
    ),
    "leads_companyduplicatepair_merge": (
        lambda w: f"/admin/leads/companyduplicatepair/{w.company_pair.pk}/merge/"
    ),
}
# Each registered model: South's row of it, or why it belongs to no team.
ADMIN_OBJECTS: dict[str, Callable[[SimpleNamespace], models.Model] | Exempt] = {
    "auth.Group": Exempt("roles, the same for every team"),
    "crm.ApiToken": lambda w: w.token,
    "crm.Team": lambda w: w.team,
    "crm.TeamWebhook": lambda w: w.webhook,
    "crm.User": lambda w: w.south_rep,
    "crm.WebhookDelivery": Exempt("admins only; the log of team webhooks"),
    "crm.WorkerHeartbeat": Exempt("worker liveness"),
    "imports.ImportJob": lambda w: w.import_job,
    "imports.ImportMapping": Exempt("mappings saved per source of files, for all who import"),
    "leads.Activity": lambda w: w.activity,
    "leads.AssignmentRule": lambda w: w.rule,
    "leads.Company": lambda w: w.company,
    "leads.CompanyDuplicatePair": lambda w: w.company_pair,
    "leads.CompanyMerge": lambda w: w.company_merge,
    "leads.CustomFieldDefinition": Exempt("the lead form's fields, set by marketers"),
    "leads.Deal": lambda w: w.deal,
    "leads.DealStage": Exempt("the deal pipeline's stages, set by admins and marketers"),
    "leads.DuplicatePair": lambda w: w.pair,
    "leads.ExportJob": lambda w: w.export_job,
    "leads.DuplicateSettings": Exempt("the detection threshold, one row, set by marketers"),
    "leads.HandOff": lambda w: w.handoff,
    "leads.Lead": lambda w: w.lead,
    "leads.LeadMerge": lambda w: w.merge,
    "leads.LeadRating": lambda w: w.rating,
    "leads.LostReason": Exempt("the pick-list of lost reasons, set by admins and marketers"),
    "leads.Note": lambda w: w.note,
    "leads.Notification": lambda w: w.notification,
    "leads.PendingEvent": Exempt("anonymous tracking events not yet tied to a lead"),
    "leads.ProductLine": Exempt("the product catalogue"),
    "leads.StageChange": lambda w: w.stage_change,
    "leads.Task": lambda w: w.task,
    "leads.TrackedEvent": Exempt("the event catalogue of the tracking API"),
    "leads.TrackingIdentity": lambda w: w.identity,
    "leads.TrackingKey": Exempt("the tracking API's site keys, set by marketers"),
    "leads.WebForm": Exempt("public web forms, set by marketers"),
    "nurturing.AutoEnrollHold": lambda w: w.hold,
    "nurturing.Enrollment": lambda w: w.enrollment,
    "nurturing.Message": lambda w: w.message,
    "nurturing.Sequence": Exempt("nurture sequences, set by marketers"),
    "nurturing.Suppression": Exempt("addresses no email goes to, for every team"),
    "reports.Campaign": Exempt("marketing campaigns and their spend"),
    "reports.DigestPreference": lambda w: w.digest,
    "scoring.ChangeLog": Exempt("the log of scoring model changes"),
    "scoring.DomainList": Exempt("scoring's domain lists"),
    "scoring.LeadScore": lambda w: w.lead_score,
    "scoring.RescoreJob": Exempt("rescore runs"),
    "scoring.Rule": Exempt("a scoring model's rules, set by marketers"),
    "scoring.ScoreEntry": lambda w: w.score_entry,
    "scoring.ScoringModel": Exempt("scoring models, set by marketers"),
    "workspace.SavedView": lambda w: w.saved_view,
}
# Rows North may read in the admin (with the model's view permission) but not change:
# companies are shared, and routing rules decide every team's hand-offs.
ADMIN_SHARED = {"leads.AssignmentRule", "leads.Company"}
ADMIN_ROLES = ("rep", "manager")


def registered() -> list[type[models.Model]]:
    return sorted(admin.site._registry, key=lambda model: model._meta.label)


def test_every_admin_url_is_in_the_matrix():
    known = {*ADMIN_SITE, *ADMIN_CUSTOM}
    for model in registered():
        app, name = model._meta.app_label, model._meta.model_name
        known |= {f"{app}_{name}_{view}" for view in ADMIN_VIEWS}
        known.add(f"admin/{app}/{name}/<path:object_id>/")  # the old address of "change"
    admin_routes = [(r, p) for r, p in url_patterns() if r.startswith("admin/")]
    unknown = sorted({matrix_key(r, p) for r, p in admin_routes} - known)
    unlisted = sorted(m._meta.label for m in registered() if m._meta.label not in ADMIN_OBJECTS)

    assert not unknown, f"admin URLs the matrix does not know: {unknown} (add to ADMIN_CUSTOM)"
    assert not unlisted, f"admin models the matrix does not know: {unlisted} (ADMIN_OBJECTS)"


def _refused(response: Any) -> bool:
    """403, or the admin's "does not exist" redirect to its index."""
    if response.status_code == 403:
        return True
    return response.status_code == 302 and response["Location"] == reverse("admin:index")


@pytest.fixture
def staff(request):
    def make(role: str):
        user = person(role, request)
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        client = Client()
        client.force_login(user)
        return client

    return make


ADMIN_TEAM_MODELS = sorted(label for label, obj in ADMIN_OBJECTS.items() if callable(obj))


@pytest.mark.parametrize("role", ADMIN_ROLES)
@pytest.mark.parametrize("label", ADMIN_TEAM_MODELS)
def test_admin_refuses_another_teams_rows(world, staff, label, role):
    client = staff(role)
    obj = ADMIN_OBJECTS[label](world)
    meta = obj._meta
    name = f"admin:{meta.app_label}_{meta.model_name}"
    before = snapshot()

    listing = client.get(reverse(f"{name}_changelist"))
    opened = client.get(reverse(f"{name}_change", args=[obj.pk]))
    posted = client.post(reverse(f"{name}_change", args=[obj.pk]), {"name": "Pwned"})
    history = client.get(reverse(f"{name}_history", args=[obj.pk]))
    deleted = client.post(reverse(f"{name}_delete", args=[obj.pk]), {"post": "yes"})

    assert listing.status_code in (200, 403)
    leaked = [s for s in SECRETS if s in listing.content.decode()]
    assert not leaked
    if label in ADMIN_SHARED:
        assert opened.status_code in (200, 403)
        if opened.status_code == 200:
            assert not opened.context["has_change_permission"]
        assert posted.status_code == 403
    else:
        assert _refused(opened), opened.status_code
        assert _refused(posted), posted.status_code
        assert _refused(history), history.status_code
    assert _refused(deleted), deleted.status_code
    assert snapshot() == before


@pytest.mark.parametrize("role", ADMIN_ROLES)
@pytest.mark.parametrize("key", sorted(ADMIN_CUSTOM))
def test_admin_custom_views_refuse_sales_roles(world, staff, key, role):
    client = staff(role)
    before = snapshot()

    opened = client.get(ADMIN_CUSTOM[key](world))
    posted = client.post(ADMIN_CUSTOM[key](world), {"lead": world.lead.pk})

    assert _refused(opened), opened.status_code
    assert _refused(posted), posted.status_code
    assert snapshot() == before


@pytest.mark.parametrize("role", ADMIN_ROLES)
def test_admin_add_forms_refuse_another_teams_leads_and_people(world, staff, role):
    client = staff(role)
    before = snapshot()
    due = timezone.localtime()
    task = {"title": "Spy", "kind": "call", "due_at_0": f"{due:%Y-%m-%d}", "due_at_1": "09:00"}

    answers = [
        client.post(reverse("admin:leads_note_add"), {"lead": world.lead.pk, "body": "Hi"}),
        client.post(reverse("admin:leads_deal_add"), {"lead": world.lead.pk, "name": "D"}),
        client.post(reverse("admin:leads_task_add"), {**task, "assignee": world.south_rep.pk}),
        client.post(
            reverse("admin:leads_lead_add"), {"email": "x@example.com", "owner": world.south_rep.pk}
        ),
    ]

    for answer in answers:
        assert answer.status_code in (200, 403)
        if answer.status_code == 200:
            assert answer.context["adminform"].form.errors
    assert snapshot() == before
