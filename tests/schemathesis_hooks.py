"""schemathesis hooks for tests/test_api_schemathesis.py: valid requests that can be valid.

A schema types a reference to another row (an id in the path or the body, a product
line's slug) as an integer or a string, and a unique field (a lead's email) as any email:
no schema can say which ids exist, which of them the caller may see, or which emails are
taken. Nor can it say what the models check across fields (thresholds in order, a rule's
parts that belong together, no close date on an open deal, a lost deal's reason from
the pick-list). So the requests generated as
valid (positive mode) name the seeded world's rows, get unique values where values must
be unique, and keep those cross-field rules (a list's score range in order too); an
import's file is a CSV whose columns fit its kind. Requests generated as invalid are
sent as generated. ``HOTLIST_SCHEMATHESIS_WORLD`` holds
the world as JSON.
"""

from __future__ import annotations

import copy
import json
import os
import re
import uuid
from typing import Any

import schemathesis
from django.utils.dateparse import parse_datetime

WORLD = json.loads(os.environ.get("HOTLIST_SCHEMATHESIS_WORLD", "{}"))
# A time every rule on activity times admits: after 2000, not in the future.
PAST = "2020-06-01T12:00:00Z"
# The row each path's ids name.
PATH_IDS = [
    (r"^/api/v1/scoring-models/\{model_pk\}/rules/\{id\}/", "rule"),
    (r"^/api/v1/scoring-models/\{id\}/", "model_pk"),
    (r"^/api/v1/(leads)/\{id\}/", "lead"),
    (r"^/api/v1/(companies)/\{id\}/", "company"),
    (r"^/api/v1/(deals)/\{id\}/", "deal"),
    (r"^/api/v1/deal-stages/\{id\}/", "deal_stage"),
    (r"^/api/v1/lost-reasons/\{id\}/", "lost_reason"),
    (r"^/api/v1/(tasks)/\{id\}/", "task"),
    (r"^/api/v1/(notes)/\{id\}/", "note"),
    (r"^/api/v1/(activities)/\{id\}/", "activity"),
    (r"^/api/v1/tokens/\{id\}/", "spare_token"),
    (r"^/api/v1/imports/\{id\}/", "import_job"),
]
# Body fields that name another row, and the seeded row they name.
REFERENCES = {"lead": "lead", "company": "company", "owner": "user", "assignee": "user"}
# Fields whose value must not be taken yet, by resource.
UNIQUE = {
    "/api/v1/leads/": ("email",),
    "/api/v1/companies/": ("name", "domain"),
    "/api/v1/scoring-models/": ("name",),
}


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    path = case.operation.path
    # The run keeps its own credentials: schemathesis reuses ids it reads in answers,
    # the run's token's among them.
    if path.endswith("/revoke/") and case.path_parameters.get("id") == WORLD["run_token"]:
        case.path_parameters = {**case.path_parameters, "id": WORLD["spare_token"]}
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    if path.startswith("/v1/") and isinstance(case.body, dict):
        case.body = _ruled_times(_read_times(case.body))
    case.path_parameters = {**(case.path_parameters or {}), **_path_ids(path)}
    # A cursor is valid only as the API issued it in a `next` link.
    if case.query and "cursor" in case.query:
        case.query = {name: value for name, value in case.query.items() if name != "cursor"}
    if case.query:
        case.query = _ordered_range(_defined_columns(case.query))
    if path == "/api/v1/imports/" and isinstance(case.body, dict):
        case.body = _importable(case.body)
    if path.startswith("/api/v1/company-merges/"):
        _company_merge(case, path)
        return case
    if isinstance(case.body, dict):
        body = copy.deepcopy(case.body)
        _fill(body, path)
        for item in body.get("activities") or []:
            if isinstance(item, dict):
                _fill(item, path)
        case.body = body
    return case


def _company_merge(case: Any, path: str) -> None:
    """A company merge names the world's company and its spare twin: the first merge
    succeeds, the later ones find the twin merged already (409), and the world's company
    stays. Every field keeps the survivor's value."""
    survivor, spare = WORLD["company"], WORLD["spare_company"]
    if path == "/api/v1/company-merges/" and isinstance(case.body, dict):
        body = copy.deepcopy(case.body)
        body.update(survivor=survivor, others=[spare])
        if isinstance(body.get("fields"), dict):
            body["fields"] = dict.fromkeys(body["fields"], survivor)
        case.body = body
    elif path == "/api/v1/company-merges/preview/":
        case.query = {**(case.query or {}), "survivor": survivor, "others": str(spare)}


def _path_ids(path: str) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    if "{model_pk}" in path:
        ids["model_pk"] = WORLD["model_pk"]
    if "{key}" in path:
        ids["key"] = WORLD["form"]
    for pattern, row in PATH_IDS:
        if re.match(pattern, path):
            ids["id"] = WORLD[row]
            break
    return ids


def _ordered_range(query: dict[str, Any]) -> dict[str, Any]:
    """A score range from its lower end to its upper one (a reversed range answers 400)."""
    low, high = _whole(query.get("score_min")), _whole(query.get("score_max"))
    if low is not None and high is not None and low > high:
        return {**query, "score_min": query["score_max"], "score_max": query["score_min"]}
    return query


def _defined_columns(query: dict[str, Any]) -> dict[str, Any]:
    """An export's columns without custom fields: the world defines none, and a column
    of an undefined custom field answers 400."""
    columns = query.get("columns")
    if columns is None:
        return query
    names = columns.split(",") if isinstance(columns, str) else list(columns)
    kept = [name for name in names if not str(name).startswith("custom.")]
    return {**query, "columns": ",".join(kept) if isinstance(columns, str) else kept}


# A file of each kind whose headers suggest every field the kind requires, whichever
# key rows find their lead by.
IMPORT_FILES = {
    "leads": "Email,External id,First name\n{tag}@example.com,{tag},Ada\n",
    "companies": "Name,Domain\nFirm {tag},{tag}.example\n",
    "activities": "Email,External id,Type,Date\nst@example.com,{tag},page_view,2020-06-01\n",
    "deals": "Email,External id,Deal name\nst@example.com,{tag},Fleet {tag}\n",
}
IMPORT_SWITCHES = (
    "day_first",
    "decimal_comma",
    "create_new",
    "update_existing",
    "dry_run",
)


def _importable(body: dict[str, Any]) -> dict[str, Any]:
    """An upload whose file reads and fits its kind: no schema can say that a file is a
    CSV with the right columns, nor which encoding, delimiter, sheet, time zone or
    mapping fits it, so those are left to be detected and suggested; the kind, the
    match key and the switches are kept as generated."""
    kind = body.get("kind") if body.get("kind") in IMPORT_FILES else "leads"
    text = IMPORT_FILES[kind].format(tag=f"st{uuid.uuid4().hex[:10]}")
    kept = {name: body[name] for name in IMPORT_SWITCHES if isinstance(body.get(name), bool)}
    if body.get("match_key") in ("email", "external_id"):
        kept["match_key"] = body["match_key"]
    # Text, as the schema types a file (bytes would judge the case invalid).
    return {"file": text, "kind": kind, **kept}


def _whole(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value)
    return None


def _fill(body: dict[str, Any], path: str) -> None:
    for field, row in REFERENCES.items():
        if body.get(field) is not None:
            body[field] = WORLD[row]
    # Product lines and custom field definitions are rows of the world too.
    for field in ("product_interests", "segment_product_lines"):
        if field in body:
            body[field] = []
    if isinstance(body.get("custom_fields"), dict):
        body["custom_fields"] = {}
    for resource, fields in UNIQUE.items():
        if path.startswith(resource) and "{model_pk}" not in path:
            for field in fields:
                if isinstance(body.get(field), str):
                    body[field] = _unique(field, body[field])
    if body.get("occurred_at"):
        body["occurred_at"] = PAST
    if path.startswith("/api/v1/deals/"):
        _deal_closing(body)
    if path.startswith("/api/v1/scoring-models/{model_pk}/"):
        _rule_parts(body)
    elif path.startswith("/api/v1/scoring-models/"):
        _thresholds(body)


def _deal_closing(body: dict[str, Any]) -> None:
    """A stage of the world's pipeline; no close date on an open deal; a lost reason from
    the pick-list on a lost one and on no other; no product line (the world has none)."""
    if body.get("stage") is not None:
        body["stage"] = WORLD["deal_stage"]
    if body.get("status", "open") == "open":
        body.pop("closed_at", None)
    if body.get("status") == "lost":
        body["lost_reason"] = WORLD["lost_reason_name"]
    else:
        body.pop("lost_reason", None)
    if "product_line" in body:
        body["product_line"] = None


def _unique(field: str, value: str) -> str:
    tag = uuid.uuid4().hex[:10]
    if field in ("email", "domain"):
        return f"st{tag}.{value}" if value else value
    return f"{value[:80]} {tag}"


def _thresholds(body: dict[str, Any]) -> None:
    """SQL from MQL up, hot above warm, grades A above B above C; one default model; no
    caps nor maximum, under which any of them could be out of reach (the stored ones
    too, for a partial body: tests/test_scoring_formula.py covers the caps); so bands on
    the rule score, which needs no scale (tests/test_decision_basis.py covers the
    others)."""
    body["is_default"] = False
    for cap in ("fit_cap", "engagement_cap", "max_points"):
        if cap in body:
            body[cap] = None
    body.pop("scale_0_100", None)
    if "decide_on" in body:
        body["decide_on"] = "rules"
    for fields in [
        ("mql_threshold", "sql_threshold"),
        ("warm_from", "hot_from"),
        ("grade_c_from", "grade_b_from", "grade_a_from"),
    ]:
        if any(field in body for field in fields):
            value = -1
            for field in fields:
                value = max(body.get(field, 0), value + 1)
                body[field] = value


def _rule_parts(body: dict[str, Any]) -> None:
    """Points (or bonus points), and the parts a fit or an engagement rule needs."""
    if not body.get("points"):
        body["points"] = 1
    if not body.get("bonus_count"):
        body["bonus_points"] = 0
    # No other tests, units nor window: each reads fields the drawn values would not fit
    # (tests/test_scoring_rule_conditions.py covers them).
    body.update(conditions=[], per_unit=None, points_cap=None, window_days=None, window_min=None)
    if body.get("kind") == "fit":
        body.update(field="job_title", operator="contains", value="cto", value_to="")
    else:
        body.update(kind="engagement", activity_type="page_view", target="", pattern="")


# The one rule for activity times (from 2000 to the moment of receipt, a UTC offset
# within PostgreSQL's ±15:59) is more than a schema states of a date-time: a valid
# call's times become one moment the rule admits, and nothing else about it changes.
TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt")


def _ruled_times(body: dict[str, Any]) -> dict[str, Any]:
    for message in [body, *(body.get("batch") if isinstance(body.get("batch"), list) else [])]:
        if not isinstance(message, dict):
            continue
        for field in TIME_FIELDS:
            if _is_time(message.get(field)) and message.get(field):
                message[field] = PAST
    return body


def _read_times(body: dict[str, Any]) -> dict[str, Any]:
    """An originalTimestamp is read only without a timestamp, and a batch's sentAt only
    by messages without their own; where they are read, they must be times."""
    batch = isinstance(body.get("batch"), list)
    messages = [m for m in (body["batch"] if batch else [body]) if isinstance(m, dict)]
    if batch and any("sentAt" not in m for m in messages) and not _is_time(body.get("sentAt")):
        body["sentAt"] = PAST
    for message in messages:
        if not message.get("timestamp") and not _is_time(message.get("originalTimestamp")):
            message["originalTimestamp"] = PAST
    return body


def _is_time(value: Any) -> bool:
    if value is None or value == "":
        return True
    try:
        return isinstance(value, str) and parse_datetime(value) is not None
    except ValueError:
        return False
