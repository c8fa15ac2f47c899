"""The studio's pages: the scoring models, one model with its rules edited in place, and a
draft version's preview against the live version, its thresholds tried before they are
saved, publishing and rolling back.

Every page asks ``scoring.permissions.may_change_models``: reps and managers get 403.
A rule or threshold change goes through ``scoring.changes`` (logged, and rescored when
the model is live); a draft's changes touch no lead. The preview is computed by
``scoring.version_preview`` and loaded after the page (htmx), as is each rule's reach.
"""

from __future__ import annotations

import copy
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.http import AuthenticatedHttpRequest
from leads.models import DealOutcome
from scoring import changes
from scoring.lead_sets import segment_leads
from scoring.models import ChangeLog, ModelStatus, Rule, ScoringModel
from scoring.permissions import may_change_models, may_view_suggestions
from scoring.selectors import RuleReach, points_shares, rule_reach
from scoring.version_preview import (
    PreviewError,
    VersionPreview,
    threshold_comparison,
    version_preview,
)

from .charts import histogram_chart
from .forms import RuleEditForm, ThresholdsForm

REFUSED = "The scoring studio is for marketers and admins."
# A live model's reach is read from its ledger; kept this long (a rescore changes it).
REACH_SECONDS = 60
KINDS = (("fit", "Fit: who they are"), ("engagement", "Engagement: what they do"))


def _check(request: AuthenticatedHttpRequest) -> None:
    if not may_change_models(request.user):
        raise PermissionDenied(REFUSED)


def _model(request: AuthenticatedHttpRequest, pk: int) -> ScoringModel:
    _check(request)
    return get_object_or_404(ScoringModel.objects.select_related("version_of"), pk=pk)


@login_required
@require_GET
def studio_index(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The live models, each with its draft versions; then drafts of no live model."""
    _check(request)
    models = ScoringModel.objects.annotate(n_rules=Count("rules")).select_related("version_of")
    live = list(models.filter(status=ModelStatus.ACTIVE))
    drafts: dict[int | None, list[ScoringModel]] = {}
    for draft in models.filter(status=ModelStatus.DRAFT).order_by("-created_at"):
        key = draft.version_of_id if draft.version_of_id in {m.pk for m in live} else None
        drafts.setdefault(key, []).append(draft)
    rows = [(model, drafts.get(model.pk, [])) for model in live]
    archived = models.filter(status=ModelStatus.ARCHIVED).count()
    context = {"rows": rows, "loose_drafts": drafts.get(None, []), "archived": archived}
    return render(request, "studio/index.html", context)


def _rule_groups(model: ScoringModel) -> list[tuple[str, str, list[Rule]]]:
    """The model's rules by kind, negative rules (negative points) on their own."""
    rules = list(model.rules.order_by("kind", "-points", "pk"))
    groups = [
        (kind, label, [r for r in rules if r.kind == kind and r.points >= 0])
        for kind, label in KINDS
    ]
    groups.append(("negative", "Negative: points taken off", [r for r in rules if r.points < 0]))
    return groups


def _page_context(model: ScoringModel, user: Any = None, **extra: Any) -> dict[str, Any]:
    visible = user is not None and may_view_suggestions(user)
    return {
        "suggestions_visible": visible,
        "closed_leads": _closed_leads(model) if visible else 0,
        "model": model,
        "groups": _rule_groups(model),
        "editable": model.status != ModelStatus.ARCHIVED,
        "history": _history(model),
        "thresholds_form": extra.pop("thresholds_form", None) or ThresholdsForm(instance=model),
        **extra,
    }


@login_required
@require_GET
def studio_model(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A model: its rules by kind, each a sentence with its points and switch edited in
    place, its thresholds and decay, and for a draft version the preview (loaded after)."""
    model = _model(request, pk)
    return render(request, "studio/model.html", _page_context(model, request.user))


def _closed_leads(model: ScoringModel) -> int:
    """The won and lost leads the suggested weights are fitted on."""
    closed = segment_leads(model).filter(deal_outcome__gte=DealOutcome.LOST)
    return closed.values("pk").distinct().count()


def _reach(model: ScoringModel) -> dict[int, RuleReach]:
    """Per rule, the leads it matches and the points it gives: from the ledger for a
    model in service, from the preview's scoring for a draft version (none otherwise)."""
    if model.is_candidate:
        try:
            return version_preview(candidate=model).rules
        except PreviewError:
            return {}
    if model.status == ModelStatus.DRAFT:
        return {}
    key = f"studio:reach:{model.pk}"
    found = cache.get(key)
    if found is None:
        found = rule_reach(model=model)
        cache.set(key, found, REACH_SECONDS)
    return found


@login_required
@require_GET
def studio_reach(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Each rule's matched leads and points share, swapped into the rule lines."""
    model = _model(request, pk)
    reach = _reach(model)
    shares = points_shares(reach)
    rows = [
        (rule.pk, reach.get(rule.pk, RuleReach()), round(100 * shares.get(rule.pk, 0.0)))
        for rule in model.rules.all()
    ]
    context = {"model": model, "rows": rows, "known": model.status != ModelStatus.DRAFT}
    context["known"] = context["known"] or model.is_candidate
    return render(request, "studio/_model_reach.html", context)


@login_required
@require_POST
def studio_rule(request: AuthenticatedHttpRequest, pk: int, rule_id: int) -> HttpResponse:
    """Change a rule's points or switch it on or off, through ``scoring.changes`` as the
    admin does: a live model rescores what the rule touches, a draft only changes."""
    model = _model(request, pk)
    rule = get_object_or_404(Rule, pk=rule_id, model=model)
    if model.status == ModelStatus.ARCHIVED:
        raise PermissionDenied("An archived version is kept as it was; put it back first.")
    before = changes.rule_snapshot(rule=rule)
    form = RuleEditForm(request.POST, instance=rule, prefix=f"rule-{rule.pk}")
    if not form.is_valid():
        rule.refresh_from_db()
        context: dict[str, Any] = {"model": model, "rule": rule, "form": form}
        return render(request, "studio/_model_rule.html", context, status=400)
    with transaction.atomic():
        form.save()
        jobs = changes.rule_save(rule=rule, before=before, by=request.user)
    cache.delete(f"studio:reach:{model.pk}")
    notice = "Saved." if not jobs else "Saved; rescoring the leads this rule touches."
    context = {"model": model, "rule": rule, "notice": notice}
    response = render(request, "studio/_model_rule.html", context)
    # A draft's preview on the page scores the changed rule again (and then its reach).
    response["HX-Trigger"] = "studio-changed"
    return response


@login_required
@require_POST
def studio_duplicate(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Make a draft version of the model (``scoring.changes.model_duplicate``)."""
    model = _model(request, pk)
    copy = changes.model_duplicate(model=model, by=request.user)
    messages.success(
        request,
        f"“{copy}” is a draft version of “{copy.version_of}”: change it and preview it here; "
        "no lead is touched until it is published.",
    )
    return redirect("studio-model", pk=copy.pk)


def _preview_context(model: ScoringModel, preview: VersionPreview) -> dict[str, Any]:
    live, candidate = preview.separation
    return {
        "model": model,
        "preview": preview,
        "live_figures": live,
        "candidate_figures": candidate,
        "chart": histogram_chart(preview.histogram, live=str(preview.live), candidate=str(model)),
        "histogram_title": _histogram_title(preview),
        "band_rows": list(zip(live.bands, candidate.bands, strict=True)),
        "decile_rows": _pair_up(live.deciles, candidate.deciles),
    }


def _histogram_title(preview: VersionPreview) -> str:
    """What the histogram counts: the score each version decides on ("Score
    distribution" for the rule score, "Blended score distribution", …)."""
    live, candidate = preview.live_thresholds.score_name, preview.thresholds.score_name
    if live == candidate:
        return f"{live} distribution"
    return f"{live} (live) and {candidate.lower()} (candidate) distribution"


def _pair_up(left: list[Any], right: list[Any]) -> list[tuple[Any, Any]]:
    size = max(len(left), len(right))
    return [
        (left[i] if i < len(left) else None, right[i] if i < len(right) else None)
        for i in range(size)
    ]


@login_required
@require_GET
def studio_preview(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A draft version against the live version, on the same leads (``scoring.version_preview``)."""
    model = _model(request, pk)
    try:
        preview = version_preview(candidate=model)
    except PreviewError as exc:
        return render(request, "studio/_model_preview.html", {"model": model, "error": str(exc)})
    response = render(request, "studio/_model_preview.html", _preview_context(model, preview))
    # The rules' reach of a draft comes from the same scoring, counted once it is done.
    response["HX-Trigger-After-Settle"] = "studio-previewed"
    return response


def _tried(saved: ScoringModel, form: ThresholdsForm) -> dict[str, Any]:
    """What the form's thresholds and base score would do, beside the saved ones: the
    moves and hand-offs of publishing, and both threshold sets side by side."""
    try:
        return {
            "tried": version_preview(candidate=saved, thresholds=form.thresholds(saved)),
            "current": version_preview(candidate=saved),
            "comparison": threshold_comparison(candidate=saved, thresholds=form.thresholds(saved)),
        }
    except PreviewError as exc:
        return {"tried_error": str(exc)}


@login_required
@require_http_methods(["POST"])
def studio_thresholds(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Try a draft's thresholds and base score (``preview`` in the form: how many leads
    would move, how many hand-offs, both threshold sets side by side, nothing saved), or
    save them (``scoring.changes.model_save``): a save that changes them shows the same
    preview first and saves once ``confirm`` is sent."""
    model = _model(request, pk)
    if model.status != ModelStatus.DRAFT:
        raise PermissionDenied("Thresholds change in a draft version, previewed first.")
    before = changes.model_snapshot(model=model)
    saved = ScoringModel.objects.get(pk=model.pk)
    form = ThresholdsForm(request.POST, instance=model)
    if not form.is_valid():
        context: dict[str, Any] = {"model": saved, "thresholds_form": form}
        return render(request, "studio/_model_thresholds.html", context, status=400)
    asked = "confirm" not in request.POST and form.changes(saved)
    if "preview" in request.POST or asked:
        context = {"model": saved, "thresholds_form": form, "confirming": asked}
        context.update(_tried(saved, form))
        template = "studio/_model_thresholds.html"
        if asked and not request.headers.get("HX-Request"):
            template = "studio/thresholds_confirm.html"
        return render(request, template, context)
    with transaction.atomic():
        form.save()
        changes.model_save(model=model, before=before, by=request.user, reason="Thresholds changed")
    messages.success(request, "Thresholds saved in the draft; the preview uses them.")
    return redirect("studio-model", pk=model.pk)


@login_required
@require_GET
def studio_thresholds_compare(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The live thresholds and the draft's (or those in the query) side by side on the
    draft's scores of the newer closed leads, with the threshold hint."""
    model = _model(request, pk)
    # The form checks the values on a copy: the model keeps its saved base score.
    form = ThresholdsForm(request.GET or None, instance=copy.copy(model))
    context: dict[str, Any] = {"model": model, "thresholds_form": form}
    if form.is_bound and not form.is_valid():
        return render(request, "studio/_thresholds_compare.html", context, status=400)
    try:
        tried = form.thresholds(model) if form.is_bound else None
        context["comparison"] = threshold_comparison(candidate=model, thresholds=tried)
    except PreviewError as exc:
        context["error"] = str(exc)
    return render(request, "studio/_thresholds_compare.html", context)


@login_required
@require_POST
def studio_publish(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Publish a draft version in place of the live one (``scoring.changes.model_publish``),
    keeping the preview's figures with the publication; a conflict answers 409."""
    model = _model(request, pk)
    try:
        figures = version_preview(candidate=model).figures()
    except PreviewError:
        figures = None
    try:
        changes.model_publish(model=model, by=request.user, figures=figures)
    except changes.PublishError as exc:
        return _conflict(request, model, str(exc))
    messages.success(
        request,
        f"“{model}” is live in place of “{model.version_of}”, which is kept to roll back to; "
        "the leads are being rescored.",
    )
    return redirect("studio-model", pk=model.pk)


@login_required
@require_POST
def studio_rollback(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Put back the version a live model replaced (``scoring.changes.model_rollback``)."""
    model = _model(request, pk)
    try:
        changes.model_rollback(model=model, by=request.user)
    except changes.PublishError as exc:
        return _conflict(request, model, str(exc))
    messages.success(
        request,
        f"“{model.version_of}” is live again; “{model}” is archived. The leads are being rescored.",
    )
    return redirect("studio-model", pk=model.version_of_id)


def _conflict(request: AuthenticatedHttpRequest, model: ScoringModel, why: str) -> HttpResponse:
    model.refresh_from_db()
    context = _page_context(model, request.user, conflict=why)
    return render(request, "studio/model.html", context, status=409)


def _family(model: ScoringModel) -> set[int]:
    """The model and every version linked to it, either way, through ``version_of``."""
    links = list(ScoringModel.objects.values_list("pk", "version_of_id"))
    family, grew = {model.pk}, True
    while grew:
        grew = False
        for pk, parent in links:
            if (pk in family) != (parent in family) and parent is not None:
                family |= {pk, parent}
                grew = True
    return family


def _history(model: ScoringModel) -> QuerySet[ChangeLog]:
    """Who made, published, rolled back and archived the versions of this model, when,
    with the preview figures kept at publication."""
    actions = ("create", "publish", "roll back", "archive", "activate")
    return ChangeLog.objects.filter(
        Q(object_type="scoringmodel", object_id__in=_family(model), action__in=actions)
    ).select_related("by")[:30]
