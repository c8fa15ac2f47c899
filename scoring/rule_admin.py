"""Rules in the admin: one line each on their model's page, edited on a page of their own.

The model's page lists its rules compactly, grouped as fit, engagement and negative
(negative points), each row its sentence, kind, points and active, the last two editable
there; everything else about a rule is edited on the rule's page, which shows the fields
of the rule's kind (static/js/rule-kind.js hides the other kind's; without the script the
other kind's fields stay folded away). A new model's page keeps the full inline form, so
a model and its first rules can be created in one go.

A rule's page asks the same of a person as its model's page does: it refuses whatever
the model's admin refuses for that model, and it saves through ``scoring.changes``
(change log, rescore) as the model's page and the API do.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from . import changes
from .models import ConditionJoin, Rule, RuleKind, ScoringModel
from .selectors import fit_field_choices

# The fields of each kind of rule, in a fieldset the kind script shows or hides.
KIND_FIELDSETS: dict[str, Any] = {
    RuleKind.FIT: (
        "Fit: who they are",
        {
            "classes": ("rule-kind", "rule-kind-fit"),
            "fields": (
                ("field", "operator"),
                ("value", "value_to"),
                ("join", "conditions"),
                ("per_unit", "points_cap"),
            ),
        },
    ),
    RuleKind.ENGAGEMENT: (
        "Engagement: what they do",
        {
            "classes": ("rule-kind", "rule-kind-engagement"),
            "fields": (
                ("activity_type", "target", "property_name"),
                ("match", "pattern", "min_duration_seconds"),
                ("max_per_day", "max_per_lead", "recency_days"),
                ("window_min", "window_measure", "window_days"),
                ("bonus_count", "bonus_points"),
            ),
        },
    ),
}
KIND_SCRIPT = "js/rule-kind.js"


class RuleForm(forms.ModelForm):
    """A rule's form: the fit field chosen from a list, in words, rather than typed.
    A field that is no longer offered (a custom field since deleted) stays choosable on
    the rules that test it, so saving leaves them as they are."""

    class Meta:
        model = Rule
        fields = ("field",)

    # Set once per page by ``RuleInline.get_formset``: one query for every rule's form.
    field_choices: list[tuple[str, Any]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = list(self.field_choices or fit_field_choices())
        offered = {value for _, group in choices[1:] for value, _ in group}
        current = self.instance.field if self.instance.pk else ""
        if current and current not in offered:
            choices.append(("Not offered any more", [(current, current)]))
        self.fields["field"] = forms.ChoiceField(
            choices=choices,
            required=False,
            label="Field",
            help_text="What a fit rule tests about the lead.",
        )
        if "join" in self.fields:
            self.fields["join"].required = False
        if "conditions" in self.fields:
            self.fields["conditions"].widget = forms.Textarea(attrs={"rows": 2, "cols": 60})
            self.fields["conditions"].help_text = (
                'More tests, e.g. [{"field": "custom.occupation", "operator": "equals", '
                '"value": "working professional"}].'
            )

    def clean_join(self) -> str:
        return self.cleaned_data.get("join") or ConditionJoin.ALL

    def clean_conditions(self) -> Any:
        value = self.cleaned_data.get("conditions")
        return [] if value in (None, "") else value


@admin.display(description="Reads as")
def rule_sentence(rule: Rule) -> str:
    return rule.describe() if rule.pk else "—"


class RuleInline(admin.StackedInline):
    """Every field of a rule, for the rules entered with a new model."""

    model = Rule
    form = RuleForm
    extra = 0
    fieldsets = (
        (None, {"fields": (("name", "kind", "points", "active"),)}),
        *KIND_FIELDSETS.values(),
    )

    class Media:
        js = (KIND_SCRIPT,)

    def get_formset(self, request: Any, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.form = type("RuleForm", (formset.form,), {"field_choices": fit_field_choices()})
        return formset


class RuleRowForm(forms.ModelForm):
    """A rule's row on its model's page: points and active."""

    class Meta:
        model = Rule
        fields = ("points", "active")

    def _update_errors(self, errors: ValidationError) -> None:
        # ``Rule.clean`` checks the whole rule; what it finds wrong with a field this row
        # does not show is said in words over the row, where the rule's page can fix it
        # (``ModelForm`` itself refuses an error named after a field it does not hold).
        if hasattr(errors, "error_dict"):
            shown: dict[str, list[ValidationError]] = {}
            for name, found in errors.error_dict.items():
                if name != NON_FIELD_ERRORS and name not in self.fields:
                    label = str(getattr(Rule._meta.get_field(name), "verbose_name", name))
                    found = [ValidationError(f"{label.capitalize()}: {m}") for m in found[0]]
                    name = NON_FIELD_ERRORS
                shown.setdefault(name, []).extend(found)
            errors = ValidationError(shown)
        super()._update_errors(errors)  # type: ignore[misc]  # ModelForm's, not in the stubs


class RuleRowFormSet(BaseInlineFormSet):
    """The rows of one group; each input says which rule it belongs to, for screen readers."""

    def add_fields(self, form: forms.ModelForm, index: int | None) -> None:
        super().add_fields(form, index)
        name = form.instance.name
        for field, label in (("points", "Points"), ("active", "Active"), ("DELETE", "Delete")):
            if field in form.fields:
                form.fields[field].widget.attrs["aria-label"] = f"{label}: {name}"
        form.fields["points"].help_text = ""


class RuleRows(admin.TabularInline):
    """One group of a model's rules, a row each; a rule is added and fully edited on its
    own page (``RuleAdmin``), which the rows and the "Add" links open."""

    model = Rule
    form = RuleRowForm
    formset = RuleRowFormSet
    # Shown by the template, which reads the rule's sentence and kind itself.
    fields = ("points", "active")
    extra = 0
    template = "admin/scoring/scoringmodel/rule_rows.html"
    # Which rules this group holds, the prefix of its form fields, and the rules its
    # "Add" links start, as (label, kind, initial points).
    rows: Q
    form_prefix: str
    adds: tuple[tuple[str, str, int | None], ...] = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Rule]:
        return super().get_queryset(request).filter(self.rows)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # on the rule's own page, through the group's links

    def get_formset(self, request: Any, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        prefix = self.form_prefix
        links = self.add_links(request, obj)
        attrs = {"get_default_prefix": classmethod(lambda cls: prefix), "add_links": links}
        return type("RuleRowFormSet", (formset,), attrs)

    def add_links(self, request: Any, model: ScoringModel | None) -> list[tuple[str, str]]:
        """The group's "Add" links, for someone who may add a rule to ``model``."""
        rule_admin = cast("RuleAdmin", self.admin_site.get_model_admin(Rule))
        if model is None or not rule_admin.has_add_permission(request, model):
            return []
        links = []
        for label, kind, points in self.adds:
            query: dict[str, str | int] = {"model": model.pk, "kind": kind}
            if points is not None:
                query["points"] = points
            links.append((label, f"{reverse('admin:scoring_rule_add')}?{urlencode(query)}"))
        return links


class FitRuleRows(RuleRows):
    verbose_name_plural = "Fit rules: who they are"
    rows = Q(kind=RuleKind.FIT, points__gte=0)
    form_prefix = "rules-fit"
    adds = (("Add a fit rule", RuleKind.FIT, None),)


class EngagementRuleRows(RuleRows):
    verbose_name_plural = "Engagement rules: what they do"
    rows = Q(kind=RuleKind.ENGAGEMENT, points__gte=0)
    form_prefix = "rules-engagement"
    adds = (("Add an engagement rule", RuleKind.ENGAGEMENT, None),)


class NegativeRuleRows(RuleRows):
    verbose_name_plural = "Negative rules: points taken off"
    rows = Q(points__lt=0)
    form_prefix = "rules-negative"
    adds = (
        ("Add a negative fit rule", RuleKind.FIT, -10),
        ("Add a negative engagement rule", RuleKind.ENGAGEMENT, -10),
    )


RULE_GROUPS = (FitRuleRows, EngagementRuleRows, NegativeRuleRows)


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    """A rule's own page: the fields of its kind, saved through ``scoring.changes``."""

    form = RuleForm
    list_display = ("name", "model", "kind", "points", "active", "sentence")
    list_filter = ("kind", "active", "model")
    list_select_related = ("model",)
    search_fields = ("name",)

    sentence = staticmethod(rule_sentence)

    class Media:
        js = (KIND_SCRIPT,)

    def get_fieldsets(self, request: HttpRequest, obj: Rule | None = None) -> Any:
        # The rule's kind (as posted, stored, or asked for by the "Add" link) opens its
        # fields; the other kind's stay folded, for a browser without the script.
        kind = request.POST.get("kind") or (obj.kind if obj else request.GET.get("kind"))
        kind = kind if kind in KIND_FIELDSETS else RuleKind.FIT
        fieldsets: list[Any] = [
            (None, {"fields": ("model", ("name", "kind"), ("points", "active"), "sentence")})
        ]
        for each, (name, options) in KIND_FIELDSETS.items():
            if each != kind:
                options = {**options, "classes": (*options["classes"], "collapse")}
            fieldsets.append((name, options))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Rule | None = None) -> Any:
        # A rule stays with its model; moving it is making a new one there.
        return ("model", "sentence") if obj else ("sentence",)

    # --- Who may: what the model's page allows for the rule's model -----------------

    def _models(self) -> admin.ModelAdmin:
        return self.admin_site.get_model_admin(ScoringModel)

    def has_view_permission(self, request: HttpRequest, obj: Rule | None = None) -> bool:
        model = obj.model if obj else None
        return super().has_view_permission(request, obj) and self._models().has_view_permission(
            request, model
        )

    def has_add_permission(self, request: HttpRequest, model: ScoringModel | None = None) -> bool:
        return super().has_add_permission(request) and self._models().has_change_permission(
            request, model
        )

    def has_change_permission(self, request: HttpRequest, obj: Rule | None = None) -> bool:
        model = obj.model if obj else None
        return super().has_change_permission(request, obj) and self._models().has_change_permission(
            request, model
        )

    def has_delete_permission(self, request: HttpRequest, obj: Rule | None = None) -> bool:
        model = obj.model if obj else None
        return super().has_delete_permission(request, obj) and self._models().has_change_permission(
            request, model
        )

    # --- Saving and deleting through scoring.changes ---------------------------------

    def save_model(self, request, obj, form, change) -> None:
        if not change and not self.has_add_permission(request, obj.model):
            raise PermissionDenied
        before = changes.rule_snapshot(rule=obj) if change else None
        super().save_model(request, obj, form, change)
        jobs = changes.rule_save(rule=obj, before=before, by=request.user)
        if jobs:
            self.message_user(
                request,
                f"Rescoring only what “{obj}” touches, on the bulk queue; progress shows "
                "on the model's page.",
                messages.INFO,
            )

    def delete_model(self, request, obj) -> None:
        request._rule_model_pk = obj.model_id  # for response_delete
        changes.rule_delete(rule=obj, by=request.user)

    def delete_queryset(self, request, queryset) -> None:
        """Delete each rule through the change log; rescore each model once."""
        edits: dict[int, changes.ModelEdit] = {}
        for rule in queryset.select_related("model"):
            edits.setdefault(rule.model_id, changes.ModelEdit(model=rule.model))
            edits[rule.model_id].rules_deleted = True
            changes.rule_delete(rule=rule, by=request.user, rescore=False)
        for edit in edits.values():
            changes.edit_rescore(edit=edit, by=request.user, reason="Rules deleted in the admin")

    # --- Back to the model's page once done --------------------------------------------

    def _model_page(
        self, request: HttpRequest, model_pk: int | None
    ) -> HttpResponseRedirect | None:
        if model_pk is None or not self._models().has_view_permission(request):
            return None
        return HttpResponseRedirect(reverse("admin:scoring_scoringmodel_change", args=[model_pk]))

    def response_post_save_add(self, request: HttpRequest, obj: Rule) -> HttpResponseRedirect:
        return self._model_page(request, obj.model_id) or super().response_post_save_add(
            request, obj
        )

    def response_post_save_change(self, request: HttpRequest, obj: Rule) -> HttpResponseRedirect:
        return self._model_page(request, obj.model_id) or super().response_post_save_change(
            request, obj
        )

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        response = super().response_delete(request, obj_display, obj_id)
        back = self._model_page(request, getattr(request, "_rule_model_pk", None))
        return back or response

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The breadcrumbs lead back to the rule's model.
        extra_context = {
            **(extra_context or {}),
            "scoring_model": self._model_of(object_id, request),
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _model_of(self, object_id: str | None, request: HttpRequest) -> ScoringModel | None:
        if object_id is not None:
            pk = object_id if str(object_id).isdigit() else None
            return ScoringModel.objects.filter(rules__pk=pk).first() if pk else None
        pk = request.GET.get("model", "")
        return ScoringModel.objects.filter(pk=pk).first() if pk.isdigit() else None
