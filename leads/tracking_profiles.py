"""What identify and group calls write to a lead's profile and its company.

An identify call's traits fill lead fields (values that do not fit are left out or cut)
and its ``context.campaign`` the attribution of a new lead; a group call's traits name
the company, found by domain or by name, and fill its industry and size.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .attribution import SOURCE_BY_UTM_MEDIUM, UTM_FIELDS
from .models import Company, Industry, Lead, Source, normalize_email
from .profiles import company_named, email_error
from .tracking_messages import InvalidMessage, employee_count, json_object, trait_text

# Lead field → the trait names that fill it, first non-empty wins.
TRAIT_NAMES = {
    "first_name": ("firstName", "first_name"),
    "last_name": ("lastName", "last_name"),
    "phone": ("phone",),
    "job_title": ("title", "jobTitle", "job_title"),
    "city": ("city",),
}
UTM_BY_CAMPAIGN_KEY = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "name",
    "utm_term": "term",
    "utm_content": "content",
}


def lead_values(traits: dict[str, Any]) -> dict[str, Any]:
    """Lead fields from identify traits; values that do not fit are left out or cut."""
    values: dict[str, Any] = {}
    email = normalize_email(trait_text(traits, "email"))
    if email and not email_error(email):
        values["email"] = email
    for field, names in TRAIT_NAMES.items():
        text = next((trait_text(traits, n) for n in names if trait_text(traits, n)), "")
        if text:
            values[field] = text[: _max_length(field)]
    first, _, last = trait_text(traits, "name").partition(" ")
    if first and "first_name" not in values and "last_name" not in values:
        values["first_name"], values["last_name"] = first[:100], last.strip()[:100]
    address = json_object(traits, "address")
    country = (trait_text(traits, "country") or trait_text(address, "country")).upper()
    if len(country) == 2:
        values["country"] = country
    if "city" not in values and trait_text(address, "city"):
        values["city"] = trait_text(address, "city")[:100]
    company = traits.get("company")
    company_name = (
        trait_text(company, "name") if isinstance(company, dict) else trait_text(traits, "company")
    )
    if company_name:
        values["company"] = company_named(company_name[:200])
    return values


def _max_length(field: str) -> int | None:
    return getattr(Lead._meta.get_field(field), "max_length", None)


def attribution(raw: dict[str, Any]) -> dict[str, str]:
    """Source, campaign and UTM fields from ``context.campaign``, for empty lead fields."""
    campaign = json_object(json_object(raw, "context"), "campaign")
    utm = {field: trait_text(campaign, key)[:200] for field, key in UTM_BY_CAMPAIGN_KEY.items()}
    utm = {field: value for field, value in utm.items() if value and field in UTM_FIELDS}
    medium = utm.get("utm_medium", "").lower()
    source = SOURCE_BY_UTM_MEDIUM.get(medium, Source.WEBSITE)
    return {"source": source, "campaign": utm.get("utm_campaign", ""), **utm}


def company_for_group(group_id: str, traits: dict[str, Any]) -> Company:
    """The company a group call names, by domain, else by name (else the group id), with
    the traits it carries written to it."""
    domain = _domain(trait_text(traits, "website") or trait_text(traits, "domain"))
    name = trait_text(traits, "name")[:200]
    if domain:
        company, _ = Company.objects.get_or_create(
            domain=domain, defaults={"name": name or group_id[:200]}
        )
    else:
        company = company_named(name or group_id[:200])
    fields = _company_values(traits, name=name)
    changed = [field for field, value in fields.items() if getattr(company, field) != value]
    for field in changed:
        setattr(company, field, fields[field])
    if changed:
        company.save(update_fields=changed)
    return company


def _company_values(traits: dict[str, Any], *, name: str) -> dict[str, Any]:
    values: dict[str, Any] = {"name": name} if name else {}
    industry = trait_text(traits, "industry").lower()
    for choice in Industry:
        if industry and industry in (choice.value, str(choice.label).lower()):
            values["industry"] = choice.value
    try:
        employees = employee_count(traits)
    except InvalidMessage:  # kept before such counts were refused
        employees = None
    if employees is not None:
        values["employee_count"] = employees
    return values


def _domain(website: str) -> str:
    if not website:
        return ""
    try:
        host = urlsplit(website if "//" in website else f"//{website}").hostname or ""
    except ValueError:  # such as an unclosed "[" of an IPv6 address
        return ""
    return host.removeprefix("www.")[:253]
