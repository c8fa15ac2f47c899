"""Custom lead fields: definitions an admin edits, values stored on ``Lead.custom_fields``.

Values live in one JSON column keyed by the definition's key, so they filter
with ordinary JSON lookups (``custom_fields__fleet_size__gte=50``) on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models


class FieldType(models.TextChoices):
    TEXT = "text", "Text"
    INTEGER = "integer", "Whole number"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Yes / no"
    DATE = "date", "Date"
    CHOICE = "choice", "One of a list"


def _coerce(field_type: str, value: Any) -> Any:
    """Turn a submitted value into its JSON form, or raise ValueError."""
    if field_type == FieldType.TEXT:
        if not isinstance(value, str | int | float):
            raise ValueError("Enter text.")
        return str(value)
    if field_type == FieldType.INTEGER:
        if isinstance(value, bool):
            raise ValueError("Enter a whole number.")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("Enter a whole number.")
        try:
            return int(str(value).strip()) if not isinstance(value, float) else int(value)
        except (TypeError, ValueError):
            raise ValueError("Enter a whole number.") from None
    if field_type == FieldType.NUMBER:
        if isinstance(value, bool):
            raise ValueError("Enter a number.")
        try:
            number = Decimal(str(value).strip())
        except (InvalidOperation, TypeError):
            raise ValueError("Enter a number.") from None
        if not number.is_finite():
            raise ValueError("Enter a number.")
        return float(number)
    if field_type == FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"true", "yes", "1", "on"}:
            return True
        if text in {"false", "no", "0", "off"}:
            return False
        raise ValueError("Enter yes or no.")
    if field_type == FieldType.DATE:
        try:
            return dt.date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise ValueError("Enter a date as YYYY-MM-DD.") from None
    if field_type == FieldType.CHOICE:
        return str(value)
    raise ValueError(f"Unknown field type {field_type!r}.")


def _plain(limit: Decimal | float) -> str:
    """A bound as people write it: 50, not 5E+1 (``Decimal.normalize`` drops trailing zeros)."""
    return f"{Decimal(str(limit)).normalize():f}"


class CustomFieldDefinition(models.Model):
    key = models.SlugField(
        max_length=50,
        unique=True,
        validators=[RegexValidator(r"^[a-z][a-z0-9_]*$", "Use lower-case letters, digits and _.")],
        help_text="Stored under this key; used in filters and scoring rules.",
    )
    label = models.CharField(max_length=100)
    field_type = models.CharField(max_length=10, choices=FieldType.choices, default=FieldType.TEXT)
    required = models.BooleanField(default=False)
    choices = models.JSONField(default=list, blank=True, help_text="For “one of a list”.")
    min_value = models.DecimalField(max_digits=15, decimal_places=4, null=True, blank=True)
    max_value = models.DecimalField(max_digits=15, decimal_places=4, null=True, blank=True)
    max_length = models.PositiveIntegerField(null=True, blank=True)
    pattern = models.CharField(
        max_length=200, blank=True, help_text="A regular expression text values must match."
    )
    help_text = models.CharField(max_length=200, blank=True)
    set_after_contact = models.BooleanField(
        default=False,
        help_text="Written by sales after the hand-off (a rating, a qualification note): "
        "never a predictive feature, since it would tell the outcome.",
    )

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label

    def clean(self) -> None:
        if self.choices is None:  # an emptied JSON box in a form
            self.choices = []
        if self.field_type == FieldType.CHOICE and not self.choices:
            raise ValidationError({"choices": "List the allowed values."})
        if not isinstance(self.choices, list) or not all(isinstance(c, str) for c in self.choices):
            raise ValidationError({"choices": "Give the choices as a list of strings."})
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValidationError(
                    {"pattern": f"Not a valid regular expression: {exc}"}
                ) from exc
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value > self.max_value
        ):
            raise ValidationError({"max_value": "The maximum is below the minimum."})

    def clean_value(self, value: Any) -> Any:
        """The stored form of ``value``; raises ValidationError with a readable message."""
        try:
            cleaned = _coerce(self.field_type, value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if self.field_type in (FieldType.INTEGER, FieldType.NUMBER):
            if self.min_value is not None and cleaned < self.min_value:
                raise ValidationError(f"Must be at least {_plain(self.min_value)}.")
            if self.max_value is not None and cleaned > self.max_value:
                raise ValidationError(f"Must be at most {_plain(self.max_value)}.")
        if self.field_type == FieldType.TEXT:
            if self.max_length and len(cleaned) > self.max_length:
                raise ValidationError(f"Use at most {self.max_length} characters.")
            if self.pattern and not re.fullmatch(self.pattern, cleaned):
                raise ValidationError("Does not have the expected format.")
        if self.field_type == FieldType.CHOICE and cleaned not in self.choices:
            raise ValidationError(f"Choose one of: {', '.join(self.choices)}.")
        return cleaned

    @classmethod
    def clean_values(cls, values: Any) -> dict[str, Any]:
        """Validate a whole ``custom_fields`` mapping against the definitions.

        Raises one ValidationError naming every bad key, so forms and the API can
        show each message beside its field.
        """
        if values in (None, ""):
            values = {}
        if not isinstance(values, dict):
            raise ValidationError({"custom_fields": "Give custom fields as an object."})
        definitions = {d.key: d for d in cls.objects.all()}
        errors: dict[str, str] = {}
        cleaned: dict[str, Any] = {}
        for key, value in values.items():
            definition = definitions.get(key)
            if definition is None:
                errors[key] = "Unknown custom field."
                continue
            if value in (None, ""):
                continue
            try:
                cleaned[key] = definition.clean_value(value)
            except ValidationError as exc:
                errors[key] = exc.messages[0]
        for key, definition in definitions.items():
            if definition.required and key not in cleaned and key not in errors:
                errors[key] = "This field is required."
        if errors:
            raise ValidationError({"custom_fields": [f"{k}: {m}" for k, m in errors.items()]})
        return cleaned
