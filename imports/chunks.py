"""What the writers of one chunk of rows share: the prepared rows, the outcome they
count into, the change records for undo, and the lookups (owners, leads by key, who may
change which lead).

A chunk is written in one transaction by one of ``imports.lead_rows``,
``imports.company_rows`` or ``imports.history_rows``; each reads what its rows name
with a query per kind of object, not one per row, and writes in bulk.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model, Q
from django.db.models.functions import Lower

from crm.db import update_rows
from crm.models import User
from leads.models import Lead
from scoring.models import DomainList, DomainListKind

from .mapping import MatchKey
from .models import ChangeAction, ImportChange, ImportRowError, ObjectType


@dataclass
class Prepared:
    """A row cleaned without errors: its number, its cells as read and its values."""

    number: int
    cells: list[Any]
    values: dict[str, Any]


@dataclass
class ChunkOutcome:
    """What a chunk did, counted, with its change records and failed rows."""

    job_id: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    changes: list[ImportChange] = field(default_factory=list)
    errors: list[ImportRowError] = field(default_factory=list)

    def fail(self, row: Prepared | int, cells: list[Any] | None, reason: str) -> None:
        number = row.number if isinstance(row, Prepared) else row
        if isinstance(row, Prepared):
            cells = row.cells
        self.failed += 1
        self.errors.append(
            ImportRowError(job_id=self.job_id, row=number, values=cells or [], reason=reason)
        )

    def record(
        self,
        row: Prepared,
        obj: Model,
        object_type: ObjectType,
        *,
        lead_id: int | None,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        action = ChangeAction.UPDATED if before is not None else ChangeAction.CREATED
        self.changes.append(
            ImportChange(
                job_id=self.job_id,
                row=row.number,
                object_type=object_type,
                object_id=obj.pk,
                lead_id=lead_id,
                action=action,
                before=_json(before or {}),
                after=_json(after or {}),
            )
        )

    def counts(self) -> dict[str, int]:
        return {
            name: getattr(self, name)
            for name in ("created", "updated", "unchanged", "skipped", "failed")
        }


class Changed:
    """The stored rows a chunk changed, each with the fields changed in it (over all the
    chunk's rows that named it), written by ``write`` in one UPDATE per set of fields."""

    def __init__(self) -> None:
        self._rows: dict[int, tuple[Model, set[str]]] = {}

    def add(self, obj: Model, fields: set[str]) -> None:
        stored, already = self._rows.get(obj.pk, (obj, set()))
        self._rows[obj.pk] = (stored, already | fields)

    def ids_changing(self, names: Iterable[str]) -> list[int]:
        """The ids of the rows with a change to one of ``names``."""
        wanted = set(names)
        return [pk for pk, (_, fields) in self._rows.items() if fields & wanted]

    def write(self, **values: Any) -> None:
        """Write each row's changed fields, with ``values`` set on every row as well."""
        groups: dict[tuple[str, ...], list[Model]] = {}
        for obj, fields in self._rows.values():
            for name, value in values.items():
                setattr(obj, name, value)
            groups.setdefault(tuple(sorted(fields | set(values))), []).append(obj)
        for names, objs in groups.items():
            update_rows(objs, names)


def row_update(
    row: Prepared,
    obj: Model,
    wanted: dict[str, Any],
    outcome: ChunkOutcome,
    changed: Changed,
    *,
    object_type: ObjectType,
    lead_id: int | None,
) -> None:
    """Apply a row's values to a stored object (or one this chunk creates), recording
    the change for undo and counting it; the write is ``changed.write``."""
    fields = {name for name, value in wanted.items() if getattr(obj, name) != value}
    if not fields:
        outcome.unchanged += 1
        return
    before = {name: getattr(obj, name) for name in fields}
    for name in fields:
        setattr(obj, name, wanted[name])
    outcome.updated += 1
    if obj.pk is None:
        return  # created earlier in this chunk: the later row's values go in with it
    after = {name: wanted[name] for name in fields}
    outcome.record(row, obj, object_type, lead_id=lead_id, before=before, after=after)
    changed.add(obj, fields)


def _json(values: dict[str, Any]) -> dict[str, Any]:
    """Values as JSON keeps them: decimals as text, datetimes in ISO 8601."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, decimal.Decimal):
            value = str(value)
        elif isinstance(value, dt.datetime | dt.date):
            value = value.isoformat()
        out[name] = value
    return out


def stored_form(model: type[Model], name: str, value: Any) -> Any:
    """A recorded value as the field stores it (the reverse of ``_json``)."""
    field_obj = model._meta.get_field(name)
    if value is None:
        return None
    return field_obj.to_python(value)  # type: ignore[union-attr]


def same(model: type[Model], name: str, current: Any, recorded: Any) -> bool:
    return current == stored_form(model, name, recorded)


# Mailbox providers whose domain says nothing of the lead's company; the marketers' own
# free-mail list (``scoring.models.DomainList``) adds to these.
FREE_MAIL_DOMAINS = frozenset(
    {
        "aol.com",
        "gmail.com",
        "googlemail.com",
        "gmx.at",
        "gmx.ch",
        "gmx.de",
        "gmx.net",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.de",
        "hotmail.fr",
        "icloud.com",
        "live.com",
        "mac.com",
        "me.com",
        "mail.com",
        "mail.ru",
        "msn.com",
        "outlook.com",
        "outlook.de",
        "posteo.de",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "t-online.de",
        "web.de",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.de",
        "yahoo.fr",
        "yandex.ru",
        "zoho.com",
    }
)


class Context:
    """Lookups a whole run shares: the people owners name, and who runs the import."""

    def __init__(self, *, user: User | None, match_key: str) -> None:
        self.user = user
        self.match_key = match_key
        self._people: dict[str, int | None] = {}
        self._free_mail: frozenset[str] | None = None

    def company_domain_of(self, email: str) -> str:
        """The email's domain when it can name a company (not a free-mail provider)."""
        domain = email.rpartition("@")[2]
        if self._free_mail is None:
            listed = DomainList.objects.filter(kind=DomainListKind.FREE_MAIL)
            self._free_mail = FREE_MAIL_DOMAINS | set(listed.values_list("domain", flat=True))
        return "" if domain in self._free_mail else domain

    def owner_id(self, name: str) -> int | None:
        """An active user's id by username or email (any case); None when there is none."""
        if name not in self._people:
            found = (
                User.objects.filter(is_active=True)
                .filter(Q(username__iexact=name) | Q(email__iexact=name))
                .order_by("pk")
                .values_list("pk", flat=True)
                .first()
            )
            self._people[name] = found
        return self._people[name]

    def leads_by_key(self, keys: Iterable[str]) -> dict[str, Lead]:
        """The leads the rows name by the match key, by that key."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        if self.match_key == MatchKey.EMAIL:
            leads = Lead.objects.alias(key=Lower("email")).filter(key__in=keys)
            return {lead.email: lead for lead in leads}
        return {lead.external_id or "": lead for lead in Lead.objects.filter(external_id__in=keys)}

    def changeable(self, lead_ids: Iterable[int]) -> set[int]:
        """Of these leads, the ones the person running the import may change (all of
        them for a command run by nobody in particular)."""
        ids = set(lead_ids)
        if self.user is None or self.user.sees_all_leads or not ids:
            return ids
        return set(
            Lead.objects.visible_to(self.user).filter(pk__in=ids).values_list("pk", flat=True)
        )
