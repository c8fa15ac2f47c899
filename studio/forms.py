"""The studio's forms: a rule's points and switch, edited in place, and a draft's
thresholds. The rule's own checks (``Rule.validate``) and the model's (``clean``) decide
what is valid, as in the admin and the API."""

from __future__ import annotations

import copy
from typing import Any

from django import forms

from scoring.models import Rule, ScoringModel
from scoring.rule_fields import RuleError
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


class ThresholdsForm(forms.ModelForm):
    class Meta:
        model = ScoringModel
        fields = ("mql_threshold", "sql_threshold", "hot_from", "warm_from")
        labels = {"hot_from": "Hot from", "warm_from": "Warm from"}

    def thresholds(self) -> VersionThresholds:
        data: dict[str, Any] = self.cleaned_data
        return VersionThresholds(
            mql=data["mql_threshold"],
            sql=data["sql_threshold"],
            hot=data["hot_from"],
            warm=data["warm_from"],
        )
