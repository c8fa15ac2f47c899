"""A whole rule added, edited or deleted in the studio, and the leads it matches counted
as it is edited.

The edit form opens in place of the rule's line (htmx) or on a page of its own; saving
goes through ``scoring.changes.rule_save`` (a live model logs and rescores what the rule
touches, a draft only changes) and deleting through ``scoring.changes.rule_delete``.
The count (``scoring.rule_count``) reads the form as it stands, saved or not.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.http import AuthenticatedHttpRequest
from scoring import changes
from scoring.models import ModelStatus, Rule, RuleKind, ScoringModel
from scoring.rule_count import rule_match_count

from .forms import RuleForm
from .views import _model

# Buttons that change the form without saving it: a condition row added or removed, the
# value choices of a newly chosen field shown (the page's fallback without JavaScript).
REDRAW = ("add_condition", "remove_condition", "redraw")


def _editable(request: AuthenticatedHttpRequest, pk: int) -> ScoringModel:
    model = _model(request, pk)
    if model.status == ModelStatus.ARCHIVED:
        raise PermissionDenied("An archived version is kept as it was; put it back first.")
    return model


def _kind(kind: str) -> str:
    if kind not in RuleKind.values:
        raise Http404("No such kind of rule.")
    return kind


def _form_response(
    request: AuthenticatedHttpRequest,
    model: ScoringModel,
    form: RuleForm,
    rule: Rule | None,
    status: int = 200,
) -> HttpResponse:
    context: dict[str, Any] = {"model": model, "form": form, "rule": rule, "kind": form.kind}
    if request.headers.get("HX-Request"):
        return render(request, "studio/_rule_form.html", context, status=status)
    return render(request, "studio/rule_edit.html", context, status=status)


def _save(
    request: AuthenticatedHttpRequest, model: ScoringModel, form: RuleForm, rule: Rule | None
) -> HttpResponse:
    before = changes.rule_snapshot(rule=rule) if rule is not None else None
    with transaction.atomic():
        saved = form.save(commit=False)
        saved.model = model
        saved.save()
        jobs = changes.rule_save(rule=saved, before=before, by=request.user)
    cache.delete(f"studio:reach:{model.pk}")
    notice = "Saved." if not jobs else "Saved; rescoring the leads this rule touches."
    if not request.headers.get("HX-Request"):
        messages.success(request, f"{notice} {saved.describe()}")
        return redirect("studio-model", pk=model.pk)
    context = {"model": model, "rule": saved, "notice": notice}
    response = render(request, "studio/_model_rule.html", context)
    response["HX-Trigger"] = "studio-changed"
    return response


def _edit(
    request: AuthenticatedHttpRequest, model: ScoringModel, kind: str, rule: Rule | None
) -> HttpResponse:
    instance = rule if rule is not None else Rule(model=model, kind=kind)
    if request.method == "GET" and "cancel" in request.GET:
        if rule is None:
            return HttpResponse("")
        return render(request, "studio/_model_rule.html", {"model": model, "rule": rule})
    if request.method == "GET":
        return _form_response(request, model, RuleForm(kind=kind, instance=instance), rule)
    form = RuleForm(request.POST, kind=kind, instance=instance)
    if any(name in request.POST for name in REDRAW):
        return _form_response(request, model, form.quiet(), rule)
    if not form.is_valid():
        return _form_response(request, model, form, rule, status=400)
    return _save(request, model, form, rule)


@login_required
@require_http_methods(["GET", "POST"])
def studio_rule_edit(request: AuthenticatedHttpRequest, pk: int, rule_id: int) -> HttpResponse:
    """Every field of a rule, in place of its line; saving shows the line again."""
    model = _editable(request, pk)
    rule = get_object_or_404(Rule, pk=rule_id, model=model)
    return _edit(request, model, rule.kind, rule)


@login_required
@require_http_methods(["GET", "POST"])
def studio_rule_add(request: AuthenticatedHttpRequest, pk: int, kind: str) -> HttpResponse:
    """A new fit or engagement rule."""
    model = _editable(request, pk)
    return _edit(request, model, _kind(kind), None)


@login_required
@require_POST
def studio_rule_delete(request: AuthenticatedHttpRequest, pk: int, rule_id: int) -> HttpResponse:
    """Delete a rule (``scoring.changes.rule_delete``: logged, a live model rescored)."""
    model = _editable(request, pk)
    rule = get_object_or_404(Rule, pk=rule_id, model=model)
    name = rule.name
    with transaction.atomic():
        changes.rule_delete(rule=rule, by=request.user)
    cache.delete(f"studio:reach:{model.pk}")
    if not request.headers.get("HX-Request"):
        messages.success(request, f"Rule “{name}” deleted.")
        return redirect("studio-model", pk=model.pk)
    response = HttpResponse("")
    response["HX-Trigger"] = "studio-changed"
    return response


@login_required
@require_GET
def studio_rule_count(request: AuthenticatedHttpRequest, pk: int, kind: str) -> HttpResponse:
    """How many leads of the model's segment the rule, as the form stands, matches; or
    what is wrong with the form."""
    model = _model(request, pk)
    kind = _kind(kind)
    rule_id = request.GET.get("rule")
    instance = Rule(model=model, kind=kind)
    if rule_id and rule_id.isdigit():
        instance = get_object_or_404(Rule, pk=int(rule_id), model=model)
    form = RuleForm(request.GET, kind=kind, instance=instance)
    context: dict[str, Any] = {"form": form}
    if form.is_valid():
        context["count"] = rule_match_count(model=model, rule=form.instance)
    return render(request, "studio/_rule_count.html", context)
