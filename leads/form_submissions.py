"""Posts to public web forms: the posted fields read through the form's mapping, the
lead created or updated by email, and the submission recorded as its activity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ValidationError
from django.db import transaction

from .activities import activities_record
from .attribution import SOURCE_BY_UTM_MEDIUM, UTM_FIELDS
from .models import (
    FORM_RESERVED_NAMES,
    Activity,
    ActivityType,
    Company,
    Lead,
    WebForm,
    normalize_email,
)
from .profiles import company_named, email_error, lead_upsert_by_email, text_max_length

# What a submission keeps of the posted fields in its activity's properties.
PROPERTY_FIELDS_MAX = 50
PROPERTY_NAME_MAX = 100
PROPERTY_VALUE_MAX = 1000

PostedFields = Mapping[str, str | list[str]]


@dataclass(frozen=True)
class FormSubmission:
    lead: Lead
    created: bool
    activity: Activity


def lead_submit_form(*, form: WebForm, data: PostedFields, page_url: str = "") -> FormSubmission:
    """Create or update the lead a submission names by email, and record the submission.

    ``data`` holds the posted fields (a list for a field posted more than once) and
    ``page_url`` the page the form was on. The form's mapping picks the lead fields; on an
    existing lead only mapped fields posted non-empty are overwritten, and source, campaign
    and UTM fields are only filled where empty. One FORM_SUBMISSION activity keeps the
    form's name, the UTM parameters and every posted field (size-limited).

    Raises ``ValidationError`` keyed by posted field names (missing or invalid email, a
    value too long for its field) and stores nothing then. Racing posts for one new email
    make one lead: the insert relies on ``lead_unique_email_ci`` and, when another request
    inserted first, updates that row instead (``lead_upsert_by_email``). Scoring is queued
    after commit.
    """
    values = _submitted_lead_values(form, data)
    utm = _utm_parameters(data, page_url)
    activity = Activity(
        type=ActivityType.FORM_SUBMISSION,
        url=page_url[:2000],
        source="form",
        properties=_submission_properties(form, data, utm),
    )
    # A new lead is inserted with the submission as its activity span, so that storing
    # the activity leaves its row alone rather than writing it a second time.
    span = {"first_activity_at": activity.occurred_at, "last_activity_at": activity.occurred_at}
    with transaction.atomic():
        fields: dict[str, object] = {k: v for k, v in values.items() if k != "company"}
        if "company" in values:
            fields["company"] = company_named(values["company"])
        lead, created = lead_upsert_by_email(
            values=fields, fill_empty=_attribution(form, utm), on_create=span
        )
        activities_record(lead=lead, activities=[activity])
    return FormSubmission(lead=lead, created=created, activity=activity)


def posted_value(data: PostedFields, name: str) -> str:
    """A posted field as stripped text; the last value of a field posted more than once."""
    value = data.get(name, "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value).strip()


def _submitted_lead_values(form: WebForm, data: PostedFields) -> dict[str, str]:
    """The non-empty mapped values by lead field; ``ValidationError`` by posted name."""
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for posted, target in form.field_mapping.items():
        value = posted_value(data, posted)
        if target == "email":
            value = normalize_email(value)
            message = email_error(value)
            if message:
                errors[posted] = [message]
                continue
        elif target == "country":
            value = value.upper()
        if not value:
            continue
        max_length = _max_length(target)
        if len(value) > max_length:
            errors[posted] = [f"Use at most {max_length} characters."]
            continue
        values[target] = value
    if errors:
        raise ValidationError(errors)
    return values


def _max_length(target: str) -> int:
    if target == "company":
        return text_max_length(Company, "name")
    return text_max_length(Lead, target)


def _utm_parameters(data: PostedFields, page_url: str) -> dict[str, str]:
    """UTM parameters from the posted fields, else from the page URL's query string."""
    query = parse_qs(urlsplit(page_url).query)
    utm = {}
    for name in UTM_FIELDS:
        value = posted_value(data, name) or (query.get(name) or [""])[0].strip()
        if value:
            utm[name] = value[:200]
    return utm


def _attribution(form: WebForm, utm: dict[str, str]) -> dict[str, str]:
    medium = utm.get("utm_medium", "").lower()
    return {
        "source": SOURCE_BY_UTM_MEDIUM.get(medium, form.default_source),
        "campaign": utm.get("utm_campaign") or form.default_campaign,
        **utm,
    }


def _submission_properties(
    form: WebForm, data: PostedFields, utm: dict[str, str]
) -> dict[str, object]:
    skipped = {form.honeypot_field, *FORM_RESERVED_NAMES}
    names = [name for name in data if name not in skipped][:PROPERTY_FIELDS_MAX]
    fields: dict[str, str | list[str]] = {}
    for name in names:
        value = data[name]
        if isinstance(value, list):
            fields[name[:PROPERTY_NAME_MAX]] = [str(v)[:PROPERTY_VALUE_MAX] for v in value]
        else:
            fields[name[:PROPERTY_NAME_MAX]] = str(value)[:PROPERTY_VALUE_MAX]
    return {"form": form.name, "form_id": form.pk, **utm, "fields": fields}
