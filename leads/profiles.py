"""Writing a lead's profile: explicit fields saved with their fit rescored after commit,
the lead found or created by email, the company a name names, and the email addresses a
lead may have."""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, models, transaction
from django.db.models.functions import Lower

from .duplicates import duplicates_note_profile
from .models import Company, Lead
from .signals import lead_profile_changed


def lead_save_profile(*, lead: Lead, changed_fields: list[str]) -> Lead:
    """Save a lead whose explicit fields changed and rescore its fit after commit.

    An existing lead writes only the changed columns: the scores on the row belong to
    the scoring worker, which may have written them since the lead was read. A new lead,
    or one whose email, phone, name or company changed, is compared with every lead for
    likely duplicates (``leads.duplicates.duplicates_note``: advice, never a failure).
    """
    with transaction.atomic():
        created = lead.pk is None
        if created:
            lead.save()
        else:
            columns = {field.name for field in Lead._meta.concrete_fields}
            lead.save(update_fields=[*(f for f in changed_fields if f in columns), "updated_at"])
        lead_profile_changed.send(sender=Lead, lead_id=lead.pk, fields=changed_fields)
        duplicates_note_profile(lead=lead, created=created, changed_fields=changed_fields)
    return lead


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
    if len(email) > text_max_length(Lead, "email"):
        return "This email address is too long."
    return ""


def company_named(name: str) -> Company:
    """The oldest company of that name (any case), or a new one.

    Company names are not unique: two first posts naming a new company at the same time
    may create it twice, which a person merges as with any duplicate.
    """
    company = Company.objects.filter(name__iexact=name).order_by("pk").first()
    return company or Company.objects.create(name=name)


def text_max_length(model: type[models.Model], name: str) -> int:
    """The ``max_length`` of a text field of ``model``."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.CharField) or field.max_length is None:
        raise TypeError(f"{model.__name__}.{name} is not a text field with a maximum length.")
    return field.max_length


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
    lead = _locked_lead(str(values["email"]))
    if lead is None:
        try:
            with transaction.atomic():
                lead = Lead(**values, **fill_empty, **(on_create or {}))
                lead_save_profile(lead=lead, changed_fields=[*values, *fill_empty])
            return lead, True
        except IntegrityError:
            lead = _locked_lead(str(values["email"]))
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
