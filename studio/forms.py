"""The studio's forms: a rule's points and switch, edited in place; a whole rule, added or
edited (its fit field chosen from the lead, company and custom fields, pick-list values
offered in words, its other conditions as rows); and a draft's thresholds. The rule's
own checks (``Rule.validate``) and the model's (``clean``) decide what is valid, as in
the admin and the API."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import FieldDoesNotExist
from django.forms.utils import ErrorDict
from django.http import QueryDict

from leads.custom_fields import CustomFieldDefinition, FieldType
from leads.models import Company, Lead
from scoring.models import Rule, ScoringModel
from scoring.rule_fields import CUSTOM_PREFIX, OPERATORS, RuleError
from scoring.selectors import fit_field_choices
from scoring.version_preview import VersionThresholds


class RuleEditForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = ("points", "active")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        rule = copy.copy(self.instance)
        rule.points, rule.active = cleaned["points"], cleaned["active"]
        try:
            rule.validate()
        except RuleError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        return cleaned


FIT_FIELDS: tuple[str, ...] = (
    "name",
    "points",
    "active",
    "field",
    "operator",
    "value",
    "value_to",
    "join",
    "per_unit",
    "points_cap",
)
ENGAGEMENT_FIELDS = (
    "name",
    "points",
    "active",
    "activity_type",
    "target",
    "property_name",
    "match",
    "pattern",
    "min_duration_seconds",
    "max_per_lead",
    "max_per_day",
    "recency_days",
    "bonus_count",
    "bonus_points",
    "window_days",
    "window_min",
    "window_measure",
)
MAX_CONDITIONS = 10
LIST_OPERATORS = ("in", "not_in")


def pick_list(field_name: str) -> list[tuple[str, str]]:
    """The values a pick-list field takes, with their words: a lead or company field with
    choices, or a custom field of the "one of a list" type; empty for any other field."""
    if field_name.startswith(CUSTOM_PREFIX):
        key = field_name.removeprefix(CUSTOM_PREFIX)
        found = CustomFieldDefinition.objects.filter(key=key, field_type=FieldType.CHOICE)
        values = found.values_list("choices", flat=True).first() or []
        return [(str(value), str(value)) for value in values]
    model: type[Lead] | type[Company] = Lead
    name = field_name
    if field_name.startswith("company."):
        model, name = Company, field_name.removeprefix("company.")
    try:
        model_field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return []
    return [(str(value), str(label)) for value, label in getattr(model_field, "flatchoices", [])]


@dataclass
class ConditionRow:
    """One more test of a fit rule, as its form row shows it."""

    index: int
    field: str = ""
    operator: str = ""
    value: str = ""
    value_to: str = ""

    @property
    def values(self) -> list[str]:
        return [item.strip() for item in self.value.split(",") if item.strip()]

    @property
    def choices(self) -> list[tuple[str, str]]:
        return pick_list(self.field) if self.field else []

    @property
    def value_name(self) -> str:
        return f"cond-{self.index}-value"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "operator": self.operator, "value": self.value} | (
            {"value_to": self.value_to} if self.value_to else {}
        )


def _joined(data: QueryDict, name: str) -> str:
    """A value given once (a text box, a select) or as several boxes ticked (a pick list's
    values for "is one of"): comma-separated, as a rule stores a list."""
    return ",".join(item.strip() for item in data.getlist(name) if item.strip())


class RuleForm(forms.ModelForm):
    """A whole rule of one kind, added or edited in the studio. The fit field is chosen
    from the lead's, its company's and the custom fields; the other conditions come as
    rows ``cond-<n>-field``/``-operator``/``-value``/``-value_to`` (``cond-count`` of them),
    added with ``add_condition`` and removed with ``remove_condition=<n>``."""

    class Meta:
        model = Rule
        fields = FIT_FIELDS + ENGAGEMENT_FIELDS[3:]

    def __init__(self, data: QueryDict | None = None, *, kind: str, **kwargs: Any) -> None:
        if data is not None:
            data = data.copy()
            data["value"] = _joined(data, "value")
        super().__init__(data, **kwargs)
        self.instance.kind = kind
        self.kind = kind
        keep = FIT_FIELDS if kind == "fit" else ENGAGEMENT_FIELDS
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
        self.fields["name"].required = False
        if "bonus_points" in self.fields:
            self.fields["bonus_points"].required = False
        self.fields["name"].help_text = "Left empty, the rule's sentence names it."
        self.rows = self._rows(data)
        if kind != "fit":
            return
        choices = fit_field_choices()[1:]
        current = (data.get("field") if data is not None else self.instance.field) or ""
        offered = {value for _, group in choices for value, _ in group}
        if current and current not in offered:
            choices.append(("Not offered any more", [(current, current)]))
        self.fields["field"] = forms.ChoiceField(
            choices=[("", "Choose a field"), *choices], label="Field", required=False
        )
        self.field_choices = choices
        operator = self.fields["operator"]
        assert isinstance(operator, forms.ChoiceField)
        operator.choices = [("", "Choose a test"), *OPERATORS.items()]

    def _rows(self, data: QueryDict | None) -> list[ConditionRow]:
        if data is None:
            items = self.instance.conditions if isinstance(self.instance.conditions, list) else []
            return [
                ConditionRow(i, **{k: str(v or "") for k, v in item.items()})
                for i, item in enumerate(items)
                if isinstance(item, dict)
            ]
        try:
            count = min(int(data.get("cond-count") or 0), MAX_CONDITIONS)
        except ValueError:
            count = 0
        removed = data.get("remove_condition")
        rows: list[ConditionRow] = []
        for i in range(count):
            if removed == str(i):
                continue
            row = ConditionRow(
                len(rows),
                field=(data.get(f"cond-{i}-field") or "").strip(),
                operator=(data.get(f"cond-{i}-operator") or "").strip(),
                value=_joined(data, f"cond-{i}-value"),
                value_to=(data.get(f"cond-{i}-value_to") or "").strip(),
            )
            if row.field or row.operator or row.value:
                rows.append(row)
        if "add_condition" in data and len(rows) < MAX_CONDITIONS:
            rows.append(ConditionRow(len(rows)))
        return rows

    def quiet(self) -> RuleForm:
        """Shown again as typed (a row added, a field's values shown), not yet judged."""
        self._errors = ErrorDict()
        return self

    list_operators = LIST_OPERATORS
    single_operators = ("equals", "not_equals")

    @property
    def value_choices(self) -> list[tuple[str, str]]:
        field = self["field"].value() if "field" in self.fields else ""
        return pick_list(field) if field else []

    @property
    def values(self) -> list[str]:
        value = self["value"].value() or ""
        return [item.strip() for item in str(value).split(",") if item.strip()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        rule = self.instance
        if cleaned.get("bonus_points", 0) is None:
            cleaned["bonus_points"] = 0
        for name, value in cleaned.items():
            setattr(rule, name, value)
        if self.kind == "fit":
            rule.conditions = [row.as_dict() for row in self.rows]
        try:
            rule.validate()
        except RuleError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
            return cleaned
        if not rule.name:
            rule.name = cleaned["name"] = rule.describe()[:100]
        return cleaned

    def _post_clean(self) -> None:
        # ``clean`` ran the rule's checks; the model's ``clean`` would name fields (the
        # conditions) this form shows as rows, not as form fields.
        if not self.errors:
            super()._post_clean()  # type: ignore[misc]


class ThresholdsForm(forms.ModelForm):
    class Meta:
        model = ScoringModel
        fields = ("mql_threshold", "sql_threshold", "hot_from", "warm_from", "base_score")
        labels = {"hot_from": "Hot from", "warm_from": "Warm from"}

    def thresholds(self, saved: ScoringModel) -> VersionThresholds:
        """The thresholds tried, on the scores of the ``saved`` model: a base score other
        than its own moves every rule score by the difference, before the score the
        model decides on is taken."""
        data: dict[str, Any] = self.cleaned_data
        return VersionThresholds(
            mql=data["mql_threshold"],
            sql=data["sql_threshold"],
            hot=data["hot_from"],
            warm=data["warm_from"],
            base_shift=data["base_score"] - saved.base_score,
            max_points=saved.max_points,
            decide_on=saved.decide_on,
            predictive_share=saved.predictive_share,
        )

    def changes(self, saved: ScoringModel) -> bool:
        """Whether the form changes any of the saved model's values."""
        data: dict[str, Any] = self.cleaned_data
        return any(data[name] != getattr(saved, name) for name in self.Meta.fields)
