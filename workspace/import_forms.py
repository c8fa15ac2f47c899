"""The import page's forms: the upload, and the mapping of a file's columns with its
constants, value maps, options and the name to save it under.

The mapping form is built from the file: one field per column, offering the targets
of the import's kind (``imports.mapping.targets_for``), initially the saved mapping's
choice or the suggestion from the header. Its ``cleaned_data`` are the arguments of
``imports.drafts.import_job_map``.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings

from imports.mapping import ImportKind, MatchKey, targets_for
from imports.models import ImportJob

CONSTANT_ROWS = 4
SKIP = ""
NEW_CUSTOM_FIELD = "__new_custom_field__"


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="File", help_text="A CSV or XLSX file; the first row names the columns."
    )
    kind = forms.ChoiceField(label="What the rows are", choices=ImportKind.CHOICES)
    encoding = forms.CharField(
        label="Encoding", required=False, max_length=40, help_text="Empty: detected."
    )
    delimiter = forms.ChoiceField(
        label="Delimiter",
        required=False,
        choices=[("", "Detected"), (",", "Comma"), (";", "Semicolon"), ("\t", "Tab"), ("|", "|")],
    )
    sheet = forms.CharField(
        label="Sheet (XLSX)", required=False, max_length=100, help_text="Empty: the first."
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_FILE_BYTES:
            limit = settings.IMPORT_MAX_FILE_BYTES // (1024 * 1024)
            raise forms.ValidationError(f"The file is larger than {limit} MB.")
        return upload


class ImportMappingForm(forms.Form):
    """One choice per column, then what every row gets, the value maps and the options."""

    match_key = forms.ChoiceField(
        label="Match existing records by",
        choices=MatchKey.CHOICES,
        help_text="A row whose key is stored already updates that record.",
    )
    value_maps = forms.CharField(
        label="Value maps",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line, FIELD: file value = stored value, e.g. "
        "“stage: Hot prospect = sql” or “industry: N/A =” (empty).",
    )
    time_zone = forms.CharField(label="The file's time zone", max_length=64, initial="UTC")
    day_first = forms.BooleanField(
        label="Dates are day first (03/04/2024 is 3 April)", required=False, initial=True
    )
    decimal_comma = forms.BooleanField(
        label="Numbers use a decimal comma (1.234,50)", required=False
    )
    phone_region = forms.CharField(
        label="Phone numbers without a country code are from",
        required=False,
        max_length=2,
        help_text="A two-letter country code, e.g. DE.",
    )
    create_new = forms.BooleanField(label="Create rows that match nothing", required=False)
    update_existing = forms.BooleanField(label="Update rows that match", required=False)
    nurture = forms.BooleanField(
        label="Let automatic nurture sequences enroll the leads it creates",
        required=False,
        help_text="Off, imported history is kept out of the hourly enrollment: nobody is "
        "emailed because of what they did in the past.",
    )
    save_as = forms.CharField(
        label="Save this mapping for the source",
        required=False,
        max_length=100,
        help_text="E.g. “Old CRM export”: the next file with these columns is mapped so.",
    )

    def __init__(
        self, *args: Any, job: ImportJob, new_custom_fields: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.job = job
        self.targets = targets_for(job.kind)
        choices = [
            (SKIP, "— not imported —"),
            *[(target.name, target.label) for target in self.targets.values()],
        ]
        column_choices = list(choices)
        if new_custom_fields and job.kind == ImportKind.LEADS:
            column_choices.append((NEW_CUSTOM_FIELD, "+ A new custom field named as the column"))
        self.column_fields: list[tuple[str, str]] = []
        for index, header in enumerate(job.headers):
            name = f"column_{index}"
            self.fields[name] = forms.ChoiceField(
                label=header or f"Column {index + 1}",
                choices=column_choices,
                required=False,
                initial=job.mapping.get(header, SKIP),
            )
            self.column_fields.append((name, header))
        for index in range(CONSTANT_ROWS):
            self.fields[f"constant_{index}_field"] = forms.ChoiceField(
                label="Field", choices=[(SKIP, "—"), *choices[1:]], required=False
            )
            self.fields[f"constant_{index}_value"] = forms.CharField(
                label="Value", required=False, max_length=500
            )
        for index, (target, value) in enumerate(list(job.constants.items())[:CONSTANT_ROWS]):
            self.initial[f"constant_{index}_field"] = target
            self.initial[f"constant_{index}_value"] = value
        self.initial.setdefault("match_key", job.match_key)
        self.initial.setdefault("value_maps", value_maps_text(job.value_maps))
        for option in ("time_zone", "day_first", "decimal_comma", "phone_region"):
            self.initial.setdefault(option, getattr(job, option))
        self.initial.setdefault("create_new", job.create_new)
        self.initial.setdefault("update_existing", job.update_existing)
        self.initial.setdefault("nurture", job.nurture)

    def columns(self) -> list[forms.BoundField]:
        return [self[name] for name, _ in self.column_fields]

    def constant_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [
            (self[f"constant_{index}_field"], self[f"constant_{index}_value"])
            for index in range(CONSTANT_ROWS)
        ]

    def options(self) -> list[forms.BoundField]:
        names = ("time_zone", "day_first", "decimal_comma", "phone_region")
        return [self[name] for name in names]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        mapping: dict[str, str] = {}
        chosen: dict[str, str] = {}
        new_fields: list[str] = []
        for name, header in self.column_fields:
            target = data.get(name) or SKIP
            if not target:
                continue
            if target == NEW_CUSTOM_FIELD:
                new_fields.append(header)
                continue
            if target in chosen:
                label = self.targets[target].label
                self.add_error(name, f"“{label}” is mapped from “{chosen[target]}” already.")
                continue
            chosen[target] = header
            mapping[header] = target
        if not mapping and not new_fields:
            raise forms.ValidationError("Map at least one column to a field.")
        constants: dict[str, str] = {}
        for index in range(CONSTANT_ROWS):
            target = data.get(f"constant_{index}_field") or SKIP
            value = (data.get(f"constant_{index}_value") or "").strip()
            if target and not value:
                self.add_error(f"constant_{index}_value", "Give the value every row gets.")
            elif value and not target:
                self.add_error(f"constant_{index}_field", "Choose the field this value fills.")
            elif target:
                constants[target] = value
        data["mapping"] = mapping
        data["new_custom_fields"] = new_fields
        data["constants"] = constants
        return data

    def clean_value_maps(self) -> dict[str, dict[str, str]]:
        return value_maps_parse(self.cleaned_data.get("value_maps") or "", self.targets)

    def clean_phone_region(self) -> str:
        return (self.cleaned_data.get("phone_region") or "").strip().upper()

    def map_arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``import_job_map``."""
        data = self.cleaned_data
        return {
            "mapping": data["mapping"],
            "constants": data["constants"],
            "value_maps": data["value_maps"],
            "match_key": data["match_key"],
            "time_zone": data["time_zone"].strip() or "UTC",
            "day_first": data["day_first"],
            "decimal_comma": data["decimal_comma"],
            "phone_region": data["phone_region"],
            "create_new": data["create_new"],
            "update_existing": data["update_existing"],
            "nurture": data["nurture"],
        }


def value_maps_parse(text: str, targets: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``stage: Hot prospect = sql`` lines as ``{"stage": {"Hot prospect": "sql"}}``."""
    maps: dict[str, dict[str, str]] = {}
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*([\w:.-]+)\s*:\s*(.*?)\s*=\s*(.*?)\s*", line)
        if not match:
            errors.append(f"Line {number}: write FIELD: file value = stored value.")
            continue
        target, word, stored = match.groups()
        if target not in targets:
            errors.append(f"Line {number}: “{target}” is not a field of this import.")
            continue
        maps.setdefault(target, {})[word] = stored
    if errors:
        raise forms.ValidationError(errors)
    return maps


def value_maps_text(value_maps: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        f"{target}: {word} = {'' if stored is None else stored}"
        for target, words in value_maps.items()
        for word, stored in words.items()
    )
