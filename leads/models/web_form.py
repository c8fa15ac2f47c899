"""Web forms: forms on public websites whose posts create or update leads."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .lead_choices import Source

# Lead fields a public form may fill; ``company`` names a company, found or created by name.
FORM_LEAD_FIELDS = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "phone",
        "job_title",
        "company",
        "country",
        "region",
        "city",
    }
)
# Posted names read for what they are, never mapped to a lead field.
FORM_RESERVED_NAMES = frozenset(
    {"page_url", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"}
)


def new_form_key() -> str:
    return secrets.token_urlsafe(18)


def default_field_mapping() -> dict[str, str]:
    return {"email": "email", "first_name": "first_name", "last_name": "last_name"}


class WebForm(models.Model):
    """A form on a public website whose submissions create or update leads.

    The key in ``/f/<key>/`` only submits: it reads nothing, so it may sit in the
    HTML of any page. Regenerating it stops submissions sent to the old one.
    """

    name = models.CharField(max_length=100, unique=True)
    key = models.CharField(
        max_length=32,
        unique=True,
        default=new_form_key,
        editable=False,
        help_text="Public: forms post to /f/<key>/.",
    )
    is_active = models.BooleanField(
        "active", default=True, help_text="An inactive form answers 404 to every post."
    )
    field_mapping = models.JSONField(
        default=default_field_mapping,
        help_text='Posted field name → lead field, e.g. {"email": "email", "fname": '
        '"first_name", "company": "company"}. Lead fields: '
        + ", ".join(sorted(FORM_LEAD_FIELDS))
        + ". Email must be mapped.",
    )
    allowed_origins = models.TextField(
        blank=True,
        help_text="Pages whose scripts may post and read the answer (CORS), one origin a line, "
        "e.g. https://www.example.com. Plain HTML form posts work from anywhere.",
    )
    redirect_url = models.URLField(
        "thank-you URL",
        max_length=500,
        blank=True,
        help_text="Where a browser goes after posting; empty shows a short thank-you page.",
    )
    default_source = models.CharField(
        max_length=20,
        choices=Source.choices,
        default=Source.WEBSITE,
        help_text="For new leads when the post carries no UTM medium that names a source.",
    )
    default_campaign = models.CharField(
        max_length=200, blank=True, help_text="For new leads when the post carries no utm_campaign."
    )
    honeypot_field = models.CharField(
        max_length=100,
        default="website",
        help_text="A field hidden from people: a post that fills it is dropped as spam.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "web form"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("form-submit", args=[self.key])

    @property
    def origins(self) -> list[str]:
        return [
            normalize_origin(line) for line in self.allowed_origins.splitlines() if line.strip()
        ]

    def allows_origin(self, origin: str) -> bool:
        return bool(origin) and normalize_origin(origin) in self.origins

    def mapped_names(self) -> dict[str, str]:
        """Lead field → posted name, for the fields this form fills."""
        return {target: posted for posted, target in self.field_mapping.items()}

    def honeypot_filled(self, data: Mapping[str, Any]) -> bool:
        """Whether a post filled the field people never see, as spam bots do."""
        value = data.get(self.honeypot_field)
        values = value if isinstance(value, list) else [value]
        return any(str(v).strip() for v in values if v is not None)

    def regenerate_key(self) -> None:
        """A new public key; posts to the old one answer 404 from now on."""
        self.key = new_form_key()
        self.save(update_fields=["key"])

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        mapping_errors = field_mapping_errors(self.field_mapping, honeypot=self.honeypot_field)
        if mapping_errors:
            errors["field_mapping"] = mapping_errors
        origin_errors = [
            f"“{line.strip()}” is not an origin such as https://www.example.com."
            for line in self.allowed_origins.splitlines()
            if line.strip() and not is_origin(line.strip())
        ]
        if origin_errors:
            errors["allowed_origins"] = origin_errors
        if errors:
            raise ValidationError(errors)
        self.allowed_origins = "\n".join(self.origins)


def field_mapping_errors(mapping: Any, *, honeypot: str) -> list[str]:
    """What is wrong with a form's field mapping; empty when it can be used."""
    if not isinstance(mapping, dict):
        return ['Give the mapping as an object: {"posted name": "lead field"}.']
    errors = []
    for posted, target in mapping.items():
        if not isinstance(target, str) or target not in FORM_LEAD_FIELDS:
            errors.append(f"{posted}: “{target}” is not a lead field a form can set.")
        elif posted in FORM_RESERVED_NAMES:
            errors.append(f"{posted}: this name is read as it is and cannot be mapped.")
        elif posted == honeypot:
            errors.append(f"{posted}: this is the honeypot field.")
    targets = [target for target in mapping.values() if isinstance(target, str)]
    duplicates = sorted({target for target in targets if targets.count(target) > 1})
    errors.extend(f"{target}: more than one posted field maps to it." for target in duplicates)
    if "email" not in targets:
        errors.append("Map a posted field to email: leads are found by their email.")
    return errors


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def is_origin(value: str) -> bool:
    """``scheme://host[:port]`` with nothing after it, as browsers send in ``Origin``."""
    try:
        parts = urlsplit(value.strip().rstrip("/"))
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not (parts.path or parts.query or parts.fragment or parts.username)
    )
