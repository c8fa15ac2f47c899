"""What a file's columns can become, per kind of import, and a row's cells cleaned into it.

A kind (leads, companies, activities, deals) has targets: the fields its rows can fill,
each with a cleaner (``imports.normalize``) and the header names it is suggested for.
A mapping names a target for each column used; constants give a target the same value
on every row (a cell of a mapped column wins when it has one); value maps turn a
column's own words into the stored ones ("Hot prospect" → a pick-list value, "Select"
→ empty). ``RowCleaner`` applies all of it to one row and reports each cell's error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from leads.models import (
    ActivityType,
    Authority,
    Budget,
    CustomFieldDefinition,
    DealStatus,
    Department,
    FieldType,
    Industry,
    Need,
    Seniority,
    Source,
    Stage,
    Timeline,
)

from .normalize import (
    CellError,
    ChoiceReader,
    clean_bool,
    clean_choice,
    clean_country,
    clean_datetime,
    clean_decimal,
    clean_email,
    clean_integer,
    clean_name,
    clean_phone,
    clean_text,
    is_placeholder,
    text_of,
)


class ImportKind:
    LEADS = "leads"
    COMPANIES = "companies"
    ACTIVITIES = "activities"
    DEALS = "deals"
    CHOICES = [
        (LEADS, "Leads (with their company)"),
        (COMPANIES, "Companies"),
        (ACTIVITIES, "Activities"),
        (DEALS, "Deals"),
    ]


class MatchKey:
    EMAIL = "email"
    EXTERNAL_ID = "external_id"
    CHOICES = [(EMAIL, "Email"), (EXTERNAL_ID, "External id")]


@dataclass
class Options:
    """How the file writes its values: time zone, day or month first, decimal comma,
    and the region of phone numbers written without a country code."""

    time_zone: str = "UTC"
    day_first: bool = True
    decimal_comma: bool = False
    phone_region: str = ""


Cleaner = Callable[[Any, Options, dict[str, Any]], Any]


@dataclass(frozen=True)
class Target:
    name: str
    label: str
    clean: Cleaner
    synonyms: tuple[str, ...] = ()
    # A pick-list's (stored value, label) pairs: a file's own words are mapped onto them.
    choices: tuple[tuple[str, str], ...] = ()
    # Whether the cleaner reads other values of the row (a phone number its country):
    # then its answer for a cell's text is not the same on every row.
    reads_row: bool = False


def _text(max_length: int) -> Cleaner:
    return lambda value, options, row: clean_text(value, max_length=max_length)


def _choice(choices: Any) -> Cleaner:
    read = ChoiceReader(choices.choices)
    return lambda value, options, row: read(value)


def _picklist(name: str, label: str, choices: Any, synonyms: tuple[str, ...] = ()) -> Target:
    return Target(name, label, _choice(choices), synonyms, tuple(choices.choices))


def _date(value: Any, options: Options, row: dict[str, Any]) -> Any:
    return clean_datetime(value, time_zone=options.time_zone, day_first=options.day_first)


def _decimal(value: Any, options: Options, row: dict[str, Any]) -> Any:
    return clean_decimal(value, decimal_comma=options.decimal_comma)


def _count(value: Any, options: Options, row: dict[str, Any]) -> int:
    number = clean_integer(value, decimal_comma=options.decimal_comma)
    if number < 0:
        raise CellError("Cannot be negative.")
    return number


def _phone(value: Any, options: Options, row: dict[str, Any]) -> str:
    region = row.get("country") or options.phone_region or settings.IMPORT_PHONE_REGION
    return clean_phone(value, region=region)


def _domain(value: Any, options: Options, row: dict[str, Any]) -> str:
    """A domain from "example.com", "www.example.com" or "https://www.example.com/about"."""
    host = _host(text_of(value))
    if not host:
        raise CellError(f"“{text_of(value)}” is not a domain.")
    return host


@functools.lru_cache(maxsize=65_536)
def _host(text: str) -> str:
    """The domain a website names, or "" for none; remembered, as a file names each
    company's website on every row of its people."""
    text = text.casefold()
    try:
        host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    except ValueError:  # "http://[" and other text no URL parser takes
        return ""
    host = host.removeprefix("www.")
    if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", host) or len(host) > 253:
        return ""
    return host


def _user(value: Any, options: Options, row: dict[str, Any]) -> str:
    """An owner by username or email, checked against the people in ``RowCleaner``."""
    return text_of(value).casefold()


def _deal_status(value: Any, options: Options, row: dict[str, Any]) -> str:
    words = {"closed won": "won", "closed lost": "lost", "closedwon": "won", "closedlost": "lost"}
    text = " ".join(text_of(value).casefold().replace("-", " ").replace("_", " ").split())
    return clean_choice(words.get(text, text), choices=DealStatus.choices)


def _currency(value: Any, options: Options, row: dict[str, Any]) -> str:
    text = text_of(value).upper()
    symbols = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY", "CHF": "CHF"}
    text = symbols.get(text, text)
    if not re.fullmatch(r"[A-Z]{3}", text):
        raise CellError(f"“{text_of(value)}” is not a currency code such as EUR.")
    return text


EMAIL = Target(
    "email",
    "Email",
    lambda v, o, r: clean_email(v),
    ("e-mail", "email address", "e-mail address", "mail", "work email", "business email"),
)
EXTERNAL_ID = Target(
    "external_id",
    "External id",
    _text(100),
    ("id", "record id", "contact id", "lead id", "crm id", "external id", "customer id"),
)
LEAD_KEYS = (EMAIL, EXTERNAL_ID)

LEAD_TARGETS = (
    *LEAD_KEYS,
    Target(
        "first_name",
        "First name",
        lambda v, o, r: clean_name(v),
        ("first name", "firstname", "given name", "forename", "vorname", "prénom"),
    ),
    Target(
        "last_name",
        "Last name",
        lambda v, o, r: clean_name(v),
        ("last name", "lastname", "surname", "family name", "nachname"),
    ),
    Target(
        "full_name",
        "Full name (split into first and last)",
        lambda v, o, r: clean_name(v, max_length=201),
        ("name", "full name", "contact name", "contact", "person"),
    ),
    Target(
        "country",
        "Country",
        lambda v, o, r: clean_country(v),
        ("country code", "land", "pays", "nation"),
    ),
    Target(
        "phone",
        "Phone",
        _phone,
        (
            "phone number",
            "telephone",
            "tel",
            "mobile",
            "mobile phone",
            "mobile number",
            "cell",
            "cell phone",
            "work phone",
            "direct phone",
        ),
        reads_row=True,
    ),
    Target("job_title", "Job title", _text(200), ("title", "position", "role", "job")),
    _picklist("seniority", "Seniority", Seniority, ("level", "job level")),
    _picklist("department", "Department", Department, ("function", "team")),
    Target(
        "company",
        "Company name",
        _text(200),
        ("company name", "organization", "organisation", "account", "account name", "employer"),
    ),
    Target(
        "company_domain",
        "Company website or domain",
        _domain,
        ("website", "domain", "company website", "web", "url", "homepage"),
    ),
    _picklist("industry", "Company industry", Industry, ("sector", "vertical")),
    Target(
        "employee_count",
        "Company employees",
        _count,
        ("employees", "company size", "number of employees", "headcount", "size"),
    ),
    Target("region", "Region", _text(100), ("state", "province", "county", "bundesland")),
    Target("city", "City", _text(100), ("town", "ort", "ville")),
    _picklist("source", "Source", Source, ("lead source", "origin", "channel")),
    Target("campaign", "Campaign", _text(200), ("campaign name",)),
    Target("utm_source", "UTM source", _text(200)),
    Target("utm_medium", "UTM medium", _text(200)),
    Target("utm_campaign", "UTM campaign", _text(200)),
    Target("utm_term", "UTM term", _text(200)),
    Target("utm_content", "UTM content", _text(200)),
    _picklist("budget", "Budget", Budget),
    _picklist("authority", "Authority", Authority),
    _picklist("need", "Need", Need),
    _picklist("timeline", "Timeline", Timeline, ("timeframe", "purchase timeline")),
    Target(
        "owner",
        "Owner (username or email)",
        _user,
        ("lead owner", "contact owner", "account owner", "assigned to", "sales rep", "rep"),
    ),
    _picklist(
        "stage",
        "Stage",
        Stage,
        ("lifecycle stage", "lead status", "status", "lifecycle"),
    ),
    Target(
        "disqualification_reason",
        "Disqualification reason",
        _text(200),
        ("disqualified reason", "reason"),
    ),
)

COMPANY_TARGETS = (
    Target("name", "Name", _text(200), ("company", "company name", "account name", "organization")),
    Target("domain", "Domain", _domain, ("website", "company domain", "web", "url", "homepage")),
    _picklist("industry", "Industry", Industry, ("sector", "vertical")),
    Target(
        "employee_count",
        "Employees",
        _count,
        ("employees", "company size", "number of employees", "headcount", "size"),
    ),
    Target(
        "annual_revenue",
        "Annual revenue",
        _decimal,
        ("revenue", "annual revenue", "turnover", "sales"),
    ),
    Target("country", "Country", lambda v, o, r: clean_country(v), ("country code", "land")),
    Target("region", "Region", _text(100), ("state", "province")),
    Target("city", "City", _text(100), ("town",)),
)

ACTIVITY_TARGETS = (
    *LEAD_KEYS,
    _picklist(
        "type",
        "Type",
        ActivityType,
        ("activity", "activity type", "event", "event type"),
    ),
    Target(
        "occurred_at",
        "When",
        _date,
        ("date", "time", "timestamp", "occurred at", "datetime", "created", "activity date"),
    ),
    Target("url", "URL", _text(2000), ("page", "link", "page url")),
    Target(
        "duration_seconds",
        "Duration (seconds)",
        _count,
        ("duration", "seconds", "time on page"),
    ),
    Target(
        "description",
        "Description",
        _text(2000),
        ("subject", "notes", "note", "details", "comment"),
    ),
)

DEAL_TARGETS = (
    *LEAD_KEYS,
    Target("name", "Deal name", _text(200), ("deal", "deal name", "opportunity", "title")),
    Target("amount", "Amount", _decimal, ("value", "deal value", "deal amount", "price", "total")),
    Target("currency", "Currency", _currency, ("currency code",)),
    Target(
        "status",
        "Outcome",
        _deal_status,
        ("outcome", "deal stage", "stage", "result"),
        tuple(DealStatus.choices),
    ),
    Target(
        "closed_at",
        "Close date",
        _date,
        ("close date", "closed", "closed at", "closed on", "won date", "date closed"),
    ),
    Target(
        "created_at",
        "Created",
        _date,
        ("created at", "create date", "created date", "created on", "opened"),
    ),
    Target("lost_reason", "Lost reason", _text(200), ("reason lost", "loss reason")),
)

TARGETS: dict[str, tuple[Target, ...]] = {
    ImportKind.LEADS: LEAD_TARGETS,
    ImportKind.COMPANIES: COMPANY_TARGETS,
    ImportKind.ACTIVITIES: ACTIVITY_TARGETS,
    ImportKind.DEALS: DEAL_TARGETS,
}
CUSTOM_PREFIX = "custom:"


class MappingError(ValueError):
    """A mapping, constant or option that cannot be used; ``messages`` lists why.

    ``fields`` holds the same messages by what each concerns, so a form or the API can
    show them beside it: ``mapping.<column>``, ``constants.<field>``,
    ``value_maps.<field>``, ``kind``, ``match_key``, or ``mapping`` for the mapping as a
    whole (a field that no column fills).
    """

    def __init__(self, messages: list[str], *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages
        self.fields = fields if fields is not None else {"mapping": list(messages)}

    @classmethod
    def of(cls, problems: list[tuple[str, str]]) -> MappingError:
        """The error for (what it concerns, message) pairs, in their order."""
        fields: dict[str, list[str]] = {}
        for concerns, message in problems:
            fields.setdefault(concerns, []).append(message)
        return cls([message for _, message in problems], fields=fields)


def targets_for(kind: str) -> dict[str, Target]:
    """The kind's targets by name, a lead import's custom fields (``custom:<key>``) too."""
    if kind not in TARGETS:
        raise MappingError.of([("kind", f"Unknown kind “{kind}”: choose {', '.join(TARGETS)}.")])
    targets = {target.name: target for target in TARGETS[kind]}
    if kind == ImportKind.LEADS:
        for definition in CustomFieldDefinition.objects.all():
            name = f"{CUSTOM_PREFIX}{definition.key}"
            choices: tuple[tuple[str, str], ...] = ()
            if definition.field_type == FieldType.CHOICE:
                choices = tuple((choice, choice) for choice in definition.choices)
            targets[name] = Target(
                name,
                definition.label,
                _custom(definition),
                (definition.key, definition.label),
                choices,
            )
    return targets


def _custom(definition: CustomFieldDefinition) -> Cleaner:
    """A custom field's value, read the way the import reads its type, then checked by
    the definition's own rules (bounds, pattern, choices)."""

    def clean(value: Any, options: Options, row: dict[str, Any]) -> Any:
        kind = definition.field_type
        if kind == FieldType.BOOLEAN:
            value = clean_bool(value)
        elif kind == FieldType.INTEGER:
            value = clean_integer(value, decimal_comma=options.decimal_comma)
        elif kind == FieldType.NUMBER:
            value = float(clean_decimal(value, decimal_comma=options.decimal_comma))
        elif kind == FieldType.DATE:
            value = _date(value, options, row).date().isoformat()
        elif kind == FieldType.CHOICE:
            value = clean_choice(value, choices=[(c, c) for c in definition.choices])
        else:
            value = text_of(value)
        try:
            return definition.clean_value(value)
        except ValidationError as exc:
            raise CellError(exc.messages[0]) from None

    return clean


def _header_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.casefold())


def suggest_mapping(kind: str, headers: Iterable[str]) -> dict[str, str]:
    """A target for each header whose name says which, each target used once: an exact
    name or label first, then a synonym ("E-mail", "Company Name", "Mobile")."""
    targets = targets_for(kind)
    exact: dict[str, str] = {}
    loose: dict[str, str] = {}
    for target in targets.values():
        for name in (target.name, target.label):
            exact.setdefault(_header_key(name), target.name)
        for synonym in target.synonyms:
            loose.setdefault(_header_key(synonym), target.name)
    suggested: dict[str, str] = {}
    used: set[str] = set()
    for header in headers:
        # "Email (2)", a repeated header, is left for a person to map.
        if re.search(r" \(\d+\)$", header):
            continue
        key = _header_key(header)
        chosen = exact.get(key) or loose.get(key)
        if chosen and chosen not in used:
            suggested[header] = chosen
            used.add(chosen)
    return suggested


def parse_pairs(text: str) -> dict[str, str]:
    """``"Email=email,Company Name=company"`` as a dict (a comma inside a header: quote
    nothing, use the API's JSON instead)."""
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        left, sep, right = part.partition("=")
        if not sep or not left.strip():
            raise MappingError([f"“{part}” is not COLUMN=FIELD."])
        pairs[left.strip()] = right.strip()
    return pairs


def lead_key_target(match_key: str) -> str:
    if match_key not in (MatchKey.EMAIL, MatchKey.EXTERNAL_ID):
        raise MappingError.of([("match_key", f"Match on email or external_id, not “{match_key}”.")])
    return match_key


def required_targets(kind: str, match_key: str) -> list[str]:
    """The fields an import of ``kind`` needs a column (or a constant) for: the lead's
    key (``match_key``) for rows that name a lead, the name of a company or a deal, an
    activity's type and time."""
    key = lead_key_target(match_key)
    if kind == ImportKind.LEADS:
        return [key]
    if kind == ImportKind.COMPANIES:
        return ["name"]
    if kind == ImportKind.ACTIVITIES:
        return [key, "type", "occurred_at"]
    return [key, "name"]


class Remembered:
    """A cleaner whose answer (a value, or the message of the error) for a cell's text is
    remembered: the words of a file's pick-lists, countries, owners, dates of custom
    fields, an activity file's emails recur on row after row, and cleaning each again
    costs more than looking it up. A column whose cells are mostly new (names, phone
    numbers, free text, the times of events) stops being remembered once that shows:
    holding its cells would only cost memory. At most ``SIZE`` texts are held; then the
    memory starts again."""

    SIZE = 20_000
    # Looked up this often, a column with fewer answers found than this share of the
    # lookups is cleaned cell by cell from then on (an activity file's emails, spread
    # over a million leads, are found for about a third of the first rows).
    TRIAL = 20_000
    FOUND_SHARE = 0.15

    def __init__(self, clean: Cleaner) -> None:
        self.clean = clean
        self.seen: dict[str, tuple[Any, str]] | None = {}
        self.lookups = 0
        self.found = 0
        self.trial = True

    def __call__(self, value: Any, options: Options, row: dict[str, Any]) -> Any:
        seen = self.seen
        if seen is None or type(value) is not str:
            return self.clean(value, options, row)
        answer = seen.get(value)
        self.lookups += 1
        if answer is not None:
            self.found += 1
            if answer[1]:
                raise CellError(answer[1])
            return answer[0]
        if self.trial and self.lookups >= self.TRIAL:
            self.trial = False  # judged once
            if self.found < self.FOUND_SHARE * self.lookups:
                self.seen = None
                return self.clean(value, options, row)
        if len(seen) >= self.SIZE:
            seen.clear()
        try:
            cleaned = self.clean(value, options, row)
        except CellError as exc:
            seen[value] = (None, str(exc))
            raise
        seen[value] = (cleaned, "")
        return cleaned


def _remembered(target: Target) -> Cleaner:
    """The target's cleaner, remembering its answers unless it reads the row's other
    values (``Remembered``)."""
    return target.clean if target.reads_row else Remembered(target.clean)


@dataclass
class RowCleaner:
    """A checked mapping that turns a row's cells into target values."""

    kind: str
    headers: list[str]
    mapping: dict[str, str]
    constants: dict[str, Any] = field(default_factory=dict)
    value_maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: Options = field(default_factory=Options)
    match_key: str = MatchKey.EMAIL

    def __post_init__(self) -> None:
        self.targets = targets_for(self.kind)
        errors = self._errors()
        if errors:
            raise MappingError.of(errors)
        self.value_maps = {
            target: {text_of(k).casefold(): v for k, v in words.items()}
            for target, words in self.value_maps.items()
        }
        # The targets in the order their cleaners run: the country before the phone
        # number, which is read in the lead's country.
        names = [n for n in self.targets if n in self.mapping.values() or n in self.constants]
        self.order = sorted(names, key=lambda n: (n != "country", list(self.targets).index(n)))
        self.column_of = {target: header for header, target in self.mapping.items() if target}
        self.constant_values, constant_errors = self._clean_constants()
        if constant_errors:
            raise MappingError.of(constant_errors)
        # What ``clean`` needs of each target, looked up once rather than for every cell.
        self.plan = [
            (target, self.column_of.get(target), _remembered(self.targets[target]))
            for target in self.order
        ]

    def _errors(self) -> list[tuple[str, str]]:
        """What is wrong, each with what it concerns (see ``MappingError.fields``)."""
        errors = []
        seen: dict[str, str] = {}
        for header, target in self.mapping.items():
            if not target:
                continue
            column = f"mapping.{header}"
            if header not in self.headers:
                errors.append((column, f"The file has no column “{header}”."))
            if target not in self.targets:
                errors.append((column, f"“{target}” is not a field of a {self.kind} import."))
            elif target in seen:
                both = f"“{seen[target]}” and “{header}” are both mapped to {target}."
                errors.append((column, both))
            seen[target] = header
        for target in self.constants:
            if target not in self.targets:
                message = f"“{target}” is not a field of a {self.kind} import."
                errors.append((f"constants.{target}", message))
        for target in self.value_maps:
            if target not in self.targets:
                message = f"Values are mapped for “{target}”, no field of this import."
                errors.append((f"value_maps.{target}", message))
        given = set(seen) | set(self.constants)
        required = required_targets(self.kind, self.match_key)
        errors += [
            ("mapping", f"Map a column to {name}.") for name in required if name not in given
        ]
        return errors

    def _clean_constants(self) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        values: dict[str, Any] = {}
        errors = []
        for target in self.order:
            if target not in self.constants:
                continue
            try:
                value = self._clean_one(target, self.constants[target], values)
            except CellError as exc:
                errors.append((f"constants.{target}", f"The constant for {target}: {exc}"))
                continue
            if value is not None:
                values[target] = value
        return values, errors

    def _clean_one(self, target: str, raw: Any, done: dict[str, Any]) -> Any:
        words = self.value_maps.get(target)
        if words and raw is not None:
            key = text_of(raw).casefold()
            if key in words:
                raw = words[key]
        if is_placeholder(raw):
            return None
        return self.targets[target].clean(raw, self.options, done)

    def clean(self, row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The row's values by target (cells first, then constants) and each bad cell's
        message by column (or by target for a constant)."""
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        value_maps, constants, options = self.value_maps, self.constant_values, self.options
        for target, header, clean in self.plan:
            raw = row.get(header) if header else None
            words = value_maps.get(target)
            if words and raw is not None:
                # A column's own word for a value, or for none ("Select" → "").
                raw = words.get(text_of(raw).casefold(), raw)
            if header is None or is_placeholder(raw):
                if target in constants:
                    values[target] = constants[target]
                continue
            try:
                value = clean(raw, options, values)
            except CellError as exc:
                errors[header] = str(exc)
                continue
            if value is not None:
                values[target] = value
            elif target in constants:
                values[target] = constants[target]
        return values, errors

    def clean_cell(self, target: str, raw: Any) -> Any:
        """One cell of ``target``'s column cleaned on its own (the job's value maps
        applied); raises ``CellError``. A cleaner that reads other cells of the row
        (a phone number reads the country) reads none here."""
        return self._clean_one(target, raw, {})
