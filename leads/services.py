"""Actions on leads that views, the API, admin actions, tasks and commands all call."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import F, JSONField, Q
from django.db.models.functions import Coalesce, Greatest, Least, Lower

from .models import (
    FORM_RESERVED_NAMES,
    Activity,
    ActivityType,
    Company,
    Lead,
    Source,
    WebForm,
    normalize_email,
)
from .signals import activity_recorded, lead_profile_changed

if TYPE_CHECKING:
    pass


def activities_record(*, lead: Lead, activities: list[Activity]) -> list[Activity]:
    """Store activities for a lead and announce them so they are scored after commit.

    Keeps the lead's first and last activity times. A repeated idempotency key from
    the same source raises ``IntegrityError`` and stores nothing.
    """
    with transaction.atomic():
        for activity in activities:
            activity.lead = lead
        created = Activity.objects.bulk_create(activities)
        times = [a.occurred_at for a in created]
        first, last = min(times), max(times)
        # Spans only ever widen: one that covers these times in hand covers them stored.
        known_first, known_last = lead.first_activity_at, lead.last_activity_at
        if not (known_first and known_last and known_first <= first and last <= known_last):
            Lead.objects.filter(pk=lead.pk).filter(_span_moves(first, last)).update(
                first_activity_at=Coalesce(Least(F("first_activity_at"), first), first),
                last_activity_at=Coalesce(Greatest(F("last_activity_at"), last), last),
            )
        activity_recorded.send(
            sender=Activity,
            lead_id=lead.pk,
            activity_ids=[a.pk for a in created],
            activities=created,
        )
    return created


def _span_moves(first: dt.datetime, last: dt.datetime) -> Q:
    """Leads whose first and last activity times do not cover ``first``..``last`` yet:
    only those are written (a lead row written again costs a new row version and an
    entry in every index of the table, ``last_activity_at`` being indexed)."""
    return (
        Q(first_activity_at__isnull=True)
        | Q(first_activity_at__gt=first)
        | Q(last_activity_at__isnull=True)
        | Q(last_activity_at__lt=last)
    )


def activities_record_many(*, activities: list[Activity]) -> list[Activity]:
    """Store activities of many leads (``lead_id`` set on each) with one INSERT, and
    announce each lead's so they are scored after commit.

    Keeps every lead's first and last activity times. The leads' rows are locked in id
    order before anything is written, so concurrent batches naming the same leads wait
    for each other instead of deadlocking. A repeated idempotency key from the same
    source raises ``IntegrityError`` and stores nothing.
    """
    if not activities:
        return []
    spans: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    for activity in activities:
        at = activity.occurred_at
        first, last = spans.get(activity.lead_id, (at, at))
        spans[activity.lead_id] = (min(first, at), max(last, at))
    lead_ids = sorted(spans)
    with transaction.atomic():
        _lock_leads(lead_ids)
        _insert_activities(activities)
        _widen_activity_spans(spans)
        by_lead: dict[int, list[Activity]] = {lead_id: [] for lead_id in lead_ids}
        for activity in activities:
            by_lead[activity.lead_id].append(activity)
        for lead_id, stored in by_lead.items():
            activity_recorded.send(
                sender=Activity,
                lead_id=lead_id,
                activity_ids=[a.pk for a in stored],
                activities=stored,
            )
    return activities


def _lock_leads(lead_ids: list[int]) -> None:
    """Lock the leads' rows in id order (``FOR NO KEY UPDATE``: activities may still
    reference them meanwhile, as the foreign key checks of other inserts need)."""
    leads = Lead.objects.filter(pk__in=lead_ids).order_by("pk")
    list(leads.select_for_update(no_key=True).values_list("pk", flat=True))


def _insert_activities(activities: list[Activity]) -> None:
    """INSERT the activities in one statement and set their ids, as ``bulk_create`` does.

    On PostgreSQL the rows travel as one array per column through ``unnest``: building
    and parsing eleven thousand parameters for a thousand rows costs several times the
    INSERT itself. Values go in as they are on the objects, as the API and tracking
    build them (``bulk_create`` would first convert each through its field); JSON is
    encoded here as its field encodes it.
    """
    if connection.vendor != "postgresql":
        Activity.objects.bulk_create(activities)
        return
    fields = [field for field in Activity._meta.concrete_fields if not field.primary_key]
    arrays = []
    for field in fields:
        values = [getattr(activity, field.attname) for activity in activities]
        if isinstance(field, JSONField):
            values = [json.dumps(value, cls=field.encoder) for value in values]
        arrays.append(values)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    names = ", ".join(f"c{n}" for n in range(len(fields)))
    # Casts to the unbounded type, so that an overlong text fails as in any INSERT
    # rather than being cut to the column's length by the cast.
    casts = ", ".join(f"%s::{_unbounded(field.db_type(connection))}[]" for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Activity._meta.db_table} ({columns})
            SELECT {names} FROM unnest({casts}) WITH ORDINALITY AS given ({names}, position)
            ORDER BY position
            RETURNING id
            """,
            arrays,
        )
        ids = cursor.fetchall()
    for activity, (pk,) in zip(activities, ids, strict=True):
        activity.pk = pk
        activity._state.adding = False
        activity._state.db = connection.alias


def _unbounded(db_type: str) -> str:
    """``varchar(30)`` as ``varchar``; other types as they are."""
    return db_type.split("(", 1)[0]


def _widen_activity_spans(spans: dict[int, tuple[dt.datetime, dt.datetime]]) -> None:
    """Move each lead's first and last activity times out to the given span; one
    statement on PostgreSQL, one per lead elsewhere.

    Leads whose times already cover their span are left alone (``_span_moves``).
    """
    if connection.vendor != "postgresql":
        for lead_id, (first, last) in spans.items():
            Lead.objects.filter(pk=lead_id).filter(_span_moves(first, last)).update(
                first_activity_at=Coalesce(Least(F("first_activity_at"), first), first),
                last_activity_at=Coalesce(Greatest(F("last_activity_at"), last), last),
            )
        return
    ids, firsts, lasts = zip(*((k, f, la) for k, (f, la) in spans.items()), strict=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {Lead._meta.db_table} AS lead
            SET first_activity_at = LEAST(lead.first_activity_at, span.first_at),
                last_activity_at = GREATEST(lead.last_activity_at, span.last_at)
            FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[])
                AS span (lead_id, first_at, last_at)
            WHERE lead.id = span.lead_id
                AND (
                    lead.first_activity_at IS NULL
                    OR lead.first_activity_at > span.first_at
                    OR lead.last_activity_at IS NULL
                    OR lead.last_activity_at < span.last_at
                )
            """,
            [list(ids), list(firsts), list(lasts)],
        )


def lead_save_profile(*, lead: Lead, changed_fields: list[str]) -> Lead:
    """Save a lead whose explicit fields changed and rescore its fit after commit.

    An existing lead writes only the changed columns: the scores on the row belong to
    the scoring worker, which may have written them since the lead was read.
    """
    with transaction.atomic():
        if lead.pk is None:
            lead.save()
        else:
            columns = {field.name for field in Lead._meta.concrete_fields}
            lead.save(update_fields=[*(f for f in changed_fields if f in columns), "updated_at"])
        lead_profile_changed.send(sender=Lead, lead_id=lead.pk, fields=changed_fields)
    return lead


# --- Form submissions ---------------------------------------------------------------

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
# What a submission keeps of the posted fields in its activity's properties.
PROPERTY_FIELDS_MAX = 50
PROPERTY_NAME_MAX = 100
PROPERTY_VALUE_MAX = 1000
# utm_medium values that name a lead source; any other medium leaves the form's default.
SOURCE_BY_UTM_MEDIUM = {
    "cpc": Source.PAID_SEARCH,
    "ppc": Source.PAID_SEARCH,
    "paid": Source.PAID_SEARCH,
    "paid_search": Source.PAID_SEARCH,
    "paidsearch": Source.PAID_SEARCH,
    "organic": Source.ORGANIC_SEARCH,
    "seo": Source.ORGANIC_SEARCH,
    "social": Source.SOCIAL,
    "paid_social": Source.SOCIAL,
    "paidsocial": Source.SOCIAL,
    "email": Source.EMAIL,
    "newsletter": Source.EMAIL,
    "referral": Source.REFERRAL,
    "event": Source.EVENT,
    "partner": Source.PARTNER,
    "affiliate": Source.PARTNER,
}

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
        company = company_named(values.pop("company")) if "company" in values else None
        if company is not None:
            values["company"] = company
        lead, created = lead_upsert_by_email(
            values=values, fill_empty=_attribution(form, utm), on_create=span
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


def email_error(email: str) -> str:
    """Why a lead cannot have this (normalized) email address; empty when it can.

    Web forms and tracking calls accept the same addresses. A domain may be
    internationalized (it is checked in its ASCII form), the mailbox name before the ``@``
    may not: Django's validator and many mail servers take only ASCII there.
    """
    if not email:
        return "Enter an email address."
    try:
        validate_email(email)
    except ValidationError:
        if not email.rpartition("@")[0].isascii():
            return (
                "Enter an address whose part before the @ is in ASCII letters, digits and "
                "punctuation: internationalized mailbox names are not accepted."
            )
        return "Enter a valid email address."
    if len(email) > Lead._meta.get_field("email").max_length:
        return "This email address is too long."
    return ""


def _max_length(target: str) -> int:
    if target == "company":
        return Company._meta.get_field("name").max_length
    return Lead._meta.get_field(target).max_length


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


def company_named(name: str) -> Company:
    """The oldest company of that name (any case), or a new one.

    Company names are not unique: two first posts naming a new company at the same time
    may create it twice, which a person merges as with any duplicate.
    """
    company = Company.objects.filter(name__iexact=name).order_by("pk").first()
    return company or Company.objects.create(name=name)


def _locked_lead(email: str) -> Lead | None:
    # LOWER(email) = … so the lookup uses the unique index on LOWER(email).
    leads = Lead.objects.alias(email_lower=Lower("email")).filter(email_lower=email)
    return leads.select_for_update().first()


def lead_upsert_by_email(
    *,
    values: dict[str, object],
    fill_empty: Mapping[str, object] | None = None,
    on_create: Mapping[str, object] | None = None,
) -> tuple[Lead, bool]:
    """The lead with ``values["email"]`` (normalised), created or updated; and whether it is new.

    Call inside ``transaction.atomic()``: the existing lead's row stays locked until the
    caller commits. ``values`` overwrite the lead's fields; ``fill_empty`` fills only fields
    that are empty (attribution); ``on_create`` holds fields that only a new lead takes
    (kept by the caller, not profile changes). Racing calls for one new email make one
    lead: the insert relies on ``lead_unique_email_ci`` and, when another request inserted
    first, updates that row instead. Fit is rescored after commit when a field changed.
    """
    fill_empty = dict(fill_empty or {})
    lead = _locked_lead(values["email"])
    if lead is None:
        try:
            with transaction.atomic():
                lead = Lead(**values, **fill_empty, **(on_create or {}))
                lead_save_profile(lead=lead, changed_fields=[*values, *fill_empty])
            return lead, True
        except IntegrityError:
            lead = _locked_lead(values["email"])
            if lead is None:
                raise
    lead_update_fields(lead=lead, values=values, fill_empty=fill_empty)
    return lead, False


def lead_update_fields(
    *, lead: Lead, values: Mapping[str, object], fill_empty: Mapping[str, object] | None = None
) -> list[str]:
    """Overwrite ``values`` and fill the empty fields of ``fill_empty`` on a lead; the names
    of the fields that changed. Call inside ``atomic()`` with the lead row locked."""
    fill_empty = fill_empty or {}
    changed = [name for name, value in values.items() if getattr(lead, name) != value]
    changed += [
        name
        for name, value in fill_empty.items()
        if name not in values and not getattr(lead, name) and value
    ]
    for name in changed:
        setattr(lead, name, values[name] if name in values else fill_empty[name])
    if changed:
        lead_save_profile(lead=lead, changed_fields=changed)
    return changed


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
