"""What a predictive model learns from: each lead's fields, its company's and its custom
fields, and aggregates of its behaviour, all read as of a given time per lead.

**Leakage guard.** A closed lead is read as of its *decision time*: its first hand-off or
its first deal, whichever came first (``decision_times``); nothing it did afterwards is
counted. ``feature_frame`` refuses (``LeakageError``) any time later than a lead's
decision time, and any behaviour row later than the time asked for. Fields written by
sales after the contact (custom fields marked *set after contact*, and the fields a
scoring model lists in ``predictive_excluded_fields``) are never read: ``feature_fields``
leaves them out, and ``feature_frame`` refuses them if asked.

**Set-based.** Fields are read with one query per chunk of leads; behaviour with one
aggregate statement per chunk (counts per activity type over 7, 30 and 90 days and in
all, seconds on the site, the last activity), each lead's own cut-off time joined from a
``VALUES`` list, which PostgreSQL and SQLite both read.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from django.db import connection
from django.db.models import Min

from leads.models import Activity, ActivityType, CustomFieldDefinition, Deal, FieldType, Lead

from ..models import ScoringModel

WINDOWS = (7, 30, 90)

# Lead and company fields read as pick-lists: (key, query path, label).
CATEGORICAL_FIELDS = (
    ("seniority", "seniority", "Seniority"),
    ("department", "department", "Department"),
    ("country", "country", "Country"),
    ("source", "source", "Source"),
    ("campaign", "campaign", "Campaign"),
    ("utm_source", "utm_source", "UTM source"),
    ("utm_medium", "utm_medium", "UTM medium"),
    ("utm_campaign", "utm_campaign", "UTM campaign"),
    ("budget", "budget", "Budget"),
    ("authority", "authority", "Authority"),
    ("need", "need", "Need"),
    ("timeline", "timeline", "Timeline"),
    ("industry", "company__industry", "Industry"),
)
NUMERIC_FIELDS = (
    ("employee_count", "company__employee_count", "employees"),
    ("annual_revenue", "company__annual_revenue", "annual revenue"),
)
BEHAVIOUR_TYPES = tuple(ActivityType)


class LeakageError(ValueError):
    """A feature would be read from after the lead's decision time, or from a field set
    after contact."""


@dataclass(frozen=True)
class FieldSpec:
    """One raw input: ``key`` names it (and is what a model excludes), ``kind`` is
    ``categorical`` or ``numeric``."""

    key: str
    kind: str
    label: str
    path: str = ""  # the lead query's path; custom fields: empty
    custom: bool = False
    url_part: str = ""  # page views whose address holds this ("/pricing")


@dataclass
class RawFrame:
    """One row per lead: pick-list values (``None`` when missing) and numbers (NaN)."""

    lead_ids: np.ndarray
    as_of: list[datetime]
    specs: list[FieldSpec]
    categorical: dict[str, list[str | None]] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, rows: np.ndarray) -> RawFrame:
        """The frame of these rows only."""
        return RawFrame(
            self.lead_ids[rows],
            [self.as_of[i] for i in rows],
            self.specs,
            {key: [values[i] for i in rows] for key, values in self.categorical.items()},
            {key: values[rows] for key, values in self.numeric.items()},
        )


def behaviour_specs() -> list[FieldSpec]:
    specs = [
        FieldSpec(f"n_{kind}_{days}d", "numeric", f"{kind.label.lower()}s in the last {days} days")
        for kind in BEHAVIOUR_TYPES
        for days in WINDOWS
    ]
    specs += [
        FieldSpec(f"n_{kind}", "numeric", f"{kind.label.lower()}s") for kind in BEHAVIOUR_TYPES
    ]
    specs += [
        FieldSpec("n_activities", "numeric", "activities in all"),
        FieldSpec("seconds_on_site", "numeric", "seconds on the site"),
        FieldSpec("days_since_activity", "numeric", "days since the last activity"),
    ]
    return specs


# Page views are also counted by the first part of their path ("/pricing", "/careers"):
# the parts of at least this share of a sample of the page views, at most so many.
URL_SAMPLE = 20_000
URL_GROUP_SHARE = 0.01
URL_GROUPS = 12
URL_PART = re.compile(r"^[a-z0-9-]{2,40}$")


def url_group_specs() -> list[FieldSpec]:
    """A count of page views per common first part of their path."""
    urls = Activity.objects.filter(type=ActivityType.PAGE_VIEW).order_by()
    sample = list(urls.values_list("url", flat=True)[:URL_SAMPLE])
    parts = Counter(_first_part(url) for url in sample)
    parts.pop("", None)
    floor = max(URL_GROUP_SHARE * len(sample), 1)
    common = [part for part, n in parts.most_common(URL_GROUPS) if n >= floor]
    return [
        FieldSpec(f"n_url_{part}", "numeric", f"visits to /{part} pages", url_part=f"/{part}")
        for part in sorted(common)
    ]


def _first_part(url: str) -> str:
    part = urlsplit(url).path.strip("/").split("/", 1)[0].lower()
    return part if URL_PART.match(part) else ""


def excluded_keys(model: ScoringModel) -> set[str]:
    """The fields ``model`` must not learn from: its own list and every custom field set
    after contact."""
    after_contact = CustomFieldDefinition.objects.filter(set_after_contact=True)
    return {*model.predictive_excluded_fields, *after_contact.values_list("key", flat=True)}


def feature_fields(model: ScoringModel) -> list[FieldSpec]:
    """The raw inputs of ``model``'s predictive model, the excluded fields left out."""
    excluded = excluded_keys(model)
    specs = [FieldSpec(key, "categorical", label, path) for key, path, label in CATEGORICAL_FIELDS]
    specs += [FieldSpec(key, "numeric", label, path) for key, path, label in NUMERIC_FIELDS]
    for definition in CustomFieldDefinition.objects.order_by("key"):
        kind = _custom_kind(definition.field_type)
        if kind:
            specs.append(FieldSpec(definition.key, kind, definition.label, custom=True))
    specs = [spec for spec in specs if spec.key not in excluded]
    return specs + behaviour_specs() + url_group_specs()


def _custom_kind(field_type: str) -> str | None:
    if field_type in (FieldType.INTEGER, FieldType.NUMBER, FieldType.BOOLEAN):
        return "numeric"
    if field_type in (FieldType.CHOICE, FieldType.TEXT):
        return "categorical"
    return None  # dates: their meaning depends on when they were written


# --- Decision times -----------------------------------------------------------------------


@dataclass(frozen=True)
class Decisions:
    """For each lead: when it was decided on (first hand-off or deal) and closed."""

    decided_at: list[datetime]
    closed_at: list[datetime]


def decision_times(lead_ids: Sequence[int] | np.ndarray) -> Decisions:
    """The decision and close times of closed leads (``closed_outcomes``), in order."""
    ids = [int(i) for i in lead_ids]
    handed = dict(
        Lead.objects.filter(pk__in=ids, handoffs__isnull=False)
        .annotate(at=Min("handoffs__created_at"))
        .values_list("pk", "at")
    )
    deals: dict[int, list[datetime]] = {}
    closed: dict[int, datetime] = {}
    rows = Deal.objects.filter(lead_id__in=ids).values_list("lead_id", "created_at", "closed_at")
    for lead_id, created, closed_at in rows.iterator(chunk_size=5000):
        deals.setdefault(lead_id, []).append(min(created, closed_at or created))
        if closed_at and (lead_id not in closed or closed_at > closed[lead_id]):
            closed[lead_id] = closed_at
    # A closed lead without a deal row (facts not refreshed yet) is read as it was created.
    missing = [i for i in ids if i not in deals and i not in handed]
    born = dict(Lead.objects.filter(pk__in=missing).values_list("pk", "created_at"))
    decided, closes = [], []
    for lead_id in ids:
        times = [*deals.get(lead_id, []), *([handed[lead_id]] if lead_id in handed else [])]
        first = min(times) if times else born[lead_id]
        decided.append(first)
        closes.append(closed.get(lead_id, first))
    return Decisions(decided, closes)


# --- Reading ------------------------------------------------------------------------------


def feature_frame(
    *,
    lead_ids: Sequence[int] | np.ndarray,
    as_of: Sequence[datetime],
    specs: list[FieldSpec],
    excluded: Iterable[str] = (),
    decided_at: Sequence[datetime] | None = None,
) -> RawFrame:
    """The raw inputs ``specs`` of each lead as of its time in ``as_of``.

    Raises ``LeakageError`` when a spec is in ``excluded`` or when a time in ``as_of`` is
    later than the lead's ``decided_at`` (a closed lead read past its decision)."""
    _guard_fields(specs, set(excluded))
    if decided_at is not None:
        _guard_times(lead_ids, as_of, decided_at)
    frame = RawFrame(np.asarray(lead_ids, dtype=np.int64), list(as_of), specs)
    _read_fields(frame)
    _read_behaviour(frame)
    return frame


def _guard_fields(specs: list[FieldSpec], excluded: set[str]) -> None:
    leaky = sorted(spec.key for spec in specs if spec.key in excluded)
    if leaky:
        raise LeakageError(f"Set after contact, never a feature: {', '.join(leaky)}.")


def _guard_times(
    lead_ids: Sequence[int] | np.ndarray, as_of: Sequence[datetime], decided_at: Sequence[datetime]
) -> None:
    for lead_id, at, decided in zip(lead_ids, as_of, decided_at, strict=True):
        if at > decided:
            raise LeakageError(
                f"Lead {lead_id} was decided on at {decided:%Y-%m-%d %H:%M}; its features "
                f"cannot be read as of {at:%Y-%m-%d %H:%M}, after it."
            )


def _read_fields(frame: RawFrame) -> None:
    specs = [spec for spec in frame.specs if spec.path or spec.custom]
    paths = sorted({spec.path for spec in specs if spec.path})
    row_of = {int(lead_id): row for row, lead_id in enumerate(frame.lead_ids)}
    n = len(frame.lead_ids)
    for spec in specs:
        if spec.kind == "categorical":
            frame.categorical[spec.key] = [None] * n
        else:
            frame.numeric[spec.key] = np.full(n, np.nan)
    ids = [int(i) for i in frame.lead_ids]
    for start in range(0, n, 5000):
        rows = Lead.objects.filter(pk__in=ids[start : start + 5000]).values_list(
            "pk", "custom_fields", *paths
        )
        for pk, custom, *values in rows:
            row = row_of[pk]
            by_path = dict(zip(paths, values, strict=True))
            custom = custom if isinstance(custom, dict) else json.loads(custom or "{}")
            for spec in specs:
                value = custom.get(spec.key) if spec.custom else by_path[spec.path]
                _put(frame, spec, row, value)


def _put(frame: RawFrame, spec: FieldSpec, row: int, value: Any) -> None:
    if spec.kind == "categorical":
        frame.categorical[spec.key][row] = clean_level(value)
    else:
        frame.numeric[spec.key][row] = clean_number(value)


# Values forms and imports write where nothing was chosen.
PLACEHOLDERS = frozenset(
    {"", "-", "--", "select", "select...", "please select", "n/a", "na", "none", "null", "unknown"}
)


def clean_level(value: Any) -> str | None:
    """A pick-list value, or None for nothing or a placeholder ("Select", "-", "")."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return None if text.lower() in PLACEHOLDERS else text


def clean_number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number if np.isfinite(number) else float("nan")


def _read_behaviour(frame: RawFrame) -> None:
    n = len(frame.lead_ids)
    for spec in behaviour_specs():
        frame.numeric[spec.key] = np.zeros(n)
    frame.numeric["days_since_activity"] = np.full(n, np.nan)
    urls = [spec for spec in frame.specs if spec.url_part]
    for spec in urls:
        frame.numeric[spec.key] = np.zeros(n)
    row_of = {int(lead_id): row for row, lead_id in enumerate(frame.lead_ids)}
    size = 5000 if connection.vendor == "postgresql" else 150  # SQLite: 999 parameters
    for start in range(0, n, size):
        part = range(start, min(start + size, n))
        cuts = [(int(frame.lead_ids[i]), frame.as_of[i]) for i in part]
        sql, params = _behaviour_sql(cuts, [spec.url_part for spec in urls])
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for lead_id, kind, *values, seconds, last in cursor.fetchall():
                row = row_of[lead_id]
                counts, by_url = values[: len(WINDOWS) + 1], values[len(WINDOWS) + 1 :]
                _add_behaviour(frame, row, kind, counts, seconds, _when(last))
                for spec, count in zip(urls, by_url, strict=True):
                    frame.numeric[spec.key][row] += count


def _add_behaviour(
    frame: RawFrame, row: int, kind: str, counts: list[int], seconds: int, last: datetime
) -> None:
    as_of = frame.as_of[row]
    if last > as_of:  # the statement's own cut-off failed: never learn from it
        raise LeakageError(f"Lead {frame.lead_ids[row]}: an activity after {as_of:%Y-%m-%d}.")
    *windowed, total = counts
    if f"n_{kind}" in frame.numeric:  # a type no longer offered counts in the totals only
        for days, count in zip(WINDOWS, windowed, strict=True):
            frame.numeric[f"n_{kind}_{days}d"][row] = count
        frame.numeric[f"n_{kind}"][row] = total
    frame.numeric["n_activities"][row] += total
    frame.numeric["seconds_on_site"][row] += seconds or 0
    idle = (as_of - last).total_seconds() / 86400
    known = frame.numeric["days_since_activity"][row]
    if np.isnan(known) or idle < known:
        frame.numeric["days_since_activity"][row] = idle


def _behaviour_sql(cuts: list[tuple[int, datetime]], url_parts: list[str]) -> tuple[str, list[Any]]:
    """Per (lead, activity type): counts over each window and in all, page views per
    part of their address, seconds on the site, and the last time, of the activities
    before the lead's own cut-off."""
    adapt = connection.ops.adapt_datetimefield_value
    cast = "CAST(%s AS timestamp with time zone)" if connection.vendor == "postgresql" else "%s"
    row = f"(%s, {', '.join([cast] * (len(WINDOWS) + 1))})"
    params: list[Any] = []
    for lead_id, as_of in cuts:
        params += [lead_id, adapt(as_of), *(adapt(as_of - timedelta(days=d)) for d in WINDOWS)]
    names = ", ".join(f"s{days}" for days in WINDOWS)
    windows = "".join(
        f"SUM(CASE WHEN a.occurred_at >= cut.s{days} THEN 1 ELSE 0 END), " for days in WINDOWS
    )
    # The parts are letters, digits and dashes (``URL_PART``): no LIKE wildcard in them.
    by_url = "SUM(CASE WHEN a.type = 'page_view' AND a.url LIKE %s THEN 1 ELSE 0 END), " * len(
        url_parts
    )
    params += [f"%{part}%" for part in url_parts]
    table = Activity._meta.db_table
    sql = (
        f"WITH cut(lead_id, as_of, {names}) AS (VALUES {', '.join([row] * len(cuts))}) "
        f"SELECT a.lead_id, a.type, {windows}COUNT(*), {by_url}"
        f"SUM(CASE WHEN a.type = 'page_view' THEN COALESCE(a.duration_seconds, 0) ELSE 0 END), "
        f"MAX(a.occurred_at) FROM {table} a JOIN cut ON cut.lead_id = a.lead_id "
        "WHERE a.occurred_at < cut.as_of GROUP BY a.lead_id, a.type"
    )
    return sql, params


def _when(value: Any) -> datetime:
    """A timestamp as the driver gives it: PostgreSQL a datetime, SQLite its text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
