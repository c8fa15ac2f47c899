"""Writing a chunk of lead rows: leads created or updated, their companies found or
created, their stages set, quietly.

Quiet means what a person's edit or a stage move would set off does not happen: the
leads are inserted and updated in bulk, a stage is set on the row with its stage
history appended (``leads.stages.stage_change_record``) instead of through
``lead_move_to_stage``, whose announcement hands leads off and moves nurture tracks,
and no profile change is announced (which would queue real-time scoring). The import
scores its leads once at the end (``scoring.quiet_rescore``). The chunk's new leads and
those whose email, phone, name or company it changed are compared with every lead for
likely duplicates before the chunk commits, in one pass for the chunk
(``leads.duplicates.duplicates_note``: pairs for the review queue, never a failed row).

An empty cell leaves the stored value alone: an import fills and corrects, it never
blanks a field. A company named by the row (name or website) is linked; otherwise a
lead without a company is linked to the company of its email's domain, unless that is
a free-mail provider's.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models.functions import Collate, Lower
from django.utils import timezone

from leads.duplicates import KEY_FIELDS, duplicates_note
from leads.models import (
    Company,
    DuplicatePair,
    Lead,
    LeadMatchKey,
    Source,
    Stage,
    StageChange,
    funnel_step,
)

from .bulk_insert import objects_insert
from .chunks import Changed, ChunkOutcome, Context, Prepared, ids_by_key, statistics_refresh
from .mapping import MatchKey
from .models import ImportJob, ObjectType

# The lead's own columns a row may fill, as the mapping's targets name them.
LEAD_COLUMNS = (
    "email",
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "job_title",
    "seniority",
    "department",
    "country",
    "region",
    "city",
    "source",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "budget",
    "authority",
    "need",
    "timeline",
    "disqualification_reason",
)
COMPANY_COLUMNS = ("company", "company_domain", "industry", "employee_count")
DISQUALIFIED_REASON = "Imported as disqualified"


@dataclass
class LeadRow:
    row: Prepared
    wanted: dict[str, Any]
    stage: str | None
    company_id: int | None
    company_named: bool


def write_lead_rows(
    *, job: ImportJob, context: Context, rows: list[Prepared], outcome: ChunkOutcome
) -> None:
    """Create, update or leave each row's lead; count each and record what changed."""
    statistics_refresh(Lead, Company, StageChange, LeadMatchKey, DuplicatePair)
    prepared = [p for p in (_prepare(row, context, outcome) for row in rows) if p]
    companies = _companies(prepared, context, outcome)
    key_name = context.match_key
    known = context.leads_by_key(p.wanted[key_name] for p in prepared)
    claims = Claims(prepared)
    allowed = context.changeable(lead.pk for lead in known.values())
    now = timezone.now()
    make = LeadMaker(now)
    created: list[tuple[LeadRow, Lead]] = []
    updated = Changed()
    history: list[tuple[LeadRow, StageChange]] = []
    for item in prepared:
        item.company_id = companies.get(id(item))
        key = item.wanted[key_name]
        lead = known.get(key)
        if lead is None:
            lead = _new_lead(item, job, outcome, make, claims)
            if lead is not None:
                known[key] = lead
                created.append((item, lead))
            continue
        if lead.pk is not None and lead.pk not in allowed:
            outcome.fail(item.row, None, "You may not change this lead (another team's).")
            continue
        if not job.update_existing:
            outcome.skipped += 1
            continue
        _update_lead(item, lead, outcome, now, claims, context, updated, history)
    objects_insert([lead for _, lead in created])
    for item, lead in created:
        outcome.record(item.row, lead, ObjectType.LEAD, lead_id=lead.pk, after=_snapshot(lead))
        if lead.stage != Stage.NEW:
            history.append((item, _stage_change(lead, Stage.NEW, context, now)))
    updated.write(updated_at=now)
    objects_insert([change for _, change in history])
    for item, change in history:
        outcome.record(item.row, change, ObjectType.STAGE_CHANGE, lead_id=change.lead_id)
    if not job.dry_run:
        compared = [lead.pk for _, lead in created] + updated.ids_changing(KEY_FIELDS)
        duplicates_note(lead_ids=compared)


def _prepare(row: Prepared, context: Context, outcome: ChunkOutcome) -> LeadRow | None:
    """The row's lead columns, owner resolved and full name split, or None (failed)."""
    values = row.values
    key = values.get(context.match_key)
    if not key:
        label = "email" if context.match_key == MatchKey.EMAIL else "external id"
        outcome.fail(row, None, f"The row has no {label}, which leads are matched on.")
        return None
    wanted = {name: values[name] for name in LEAD_COLUMNS if name in values}
    if "full_name" in values and not ({"first_name", "last_name"} & set(values)):
        first, _, last = values["full_name"].rpartition(" ")
        wanted["first_name"], wanted["last_name"] = (first, last) if first else (last, "")
        if len(wanted["first_name"]) > 100 or len(wanted["last_name"]) > 100:
            outcome.fail(row, None, "The name is longer than 100 characters.")
            return None
    if "owner" in values:
        owner_id = context.owner_id(values["owner"])
        if owner_id is None:
            outcome.fail(row, None, f"No active user “{values['owner']}” to own the lead.")
            return None
        wanted["owner_id"] = owner_id
    custom = {k.removeprefix("custom:"): v for k, v in values.items() if k.startswith("custom:")}
    if custom:
        wanted["custom_fields"] = custom
    named = "company" in values or "company_domain" in values
    return LeadRow(row, wanted, values.get("stage"), None, named)


def _companies(items: list[LeadRow], context: Context, outcome: ChunkOutcome) -> dict[int, int]:
    """The id of each row's company (by ``id`` of the row), found by domain then by
    name, or created when the row names one; companies created are recorded for undo.
    Stored companies are read as ids alone: a chunk names hundreds."""
    wanted: dict[int, tuple[str, str, dict[str, Any]]] = {}
    for item in items:
        values = item.row.values
        email = item.wanted.get("email", "")
        domain = values.get("company_domain") or (context.company_domain_of(email) if email else "")
        name = values.get("company", "")
        if domain or name:
            extra: dict[str, Any] = {
                k: values[k] for k in ("industry", "employee_count") if k in values
            }
            wanted[id(item)] = (domain, name, extra)
    domains = {d for d, _, _ in wanted.values() if d}
    names = {n.casefold() for _, n, _ in wanted.values() if n}
    by_domain: dict[str, int | Company] = dict(ids_by_key(Company, "domain", domains, lower=True))
    by_name: dict[str, int | Company] = {}
    # In the C collation (the same equality) rather than through the trigram index on
    # the lower-cased name, which PostgreSQL picks for equality too once the table is
    # analyzed: a chunk's thousand names took it half a minute among 5,000 companies.
    key = Collate(Lower("name"), "C") if connection.vendor == "postgresql" else Lower("name")
    named = Company.objects.alias(key=key).filter(key__in=names).order_by("-pk")
    for pk, known_name in named.values_list("pk", "name"):
        by_name[known_name.casefold()] = pk
    found: dict[int, int | Company] = {}
    new: list[tuple[LeadRow, Company]] = []
    for item in items:
        if id(item) not in wanted:
            continue
        domain, name, extra = wanted[id(item)]
        company = by_domain.get(domain) if domain else None
        if company is None and name:
            company = by_name.get(name.casefold())
        if company is None and (name or item.row.values.get("company_domain")):
            company = Company(name=name or domain, domain=domain, **extra)
            new.append((item, company))
            if domain:
                by_domain[domain] = company
            if name:
                by_name[name.casefold()] = company
        if company is not None:
            found[id(item)] = company
    objects_insert([company for _, company in new])
    for item, company in new:
        outcome.record(item.row, company, ObjectType.COMPANY, lead_id=None)
    return {key: c if isinstance(c, int) else c.pk for key, c in found.items()}


class Claims:
    """Which lead holds each email and external id the chunk names (both are unique):
    stored leads looked up at once, new ones as the chunk creates them."""

    def __init__(self, items: list[LeadRow]) -> None:
        emails = {i.wanted["email"] for i in items if i.wanted.get("email")}
        externals = {i.wanted["external_id"] for i in items if i.wanted.get("external_id")}
        self.holder: dict[tuple[str, str], int] = {}
        for email, pk in ids_by_key(Lead, "email", emails, lower=True).items():
            self.holder[("email", email)] = pk
        for external_id, pk in ids_by_key(Lead, "external_id", externals).items():
            self.holder[("external_id", external_id)] = pk

    @staticmethod
    def _me(lead: Lead) -> int:
        return lead.pk if lead.pk is not None else -id(lead)

    def conflict(self, lead: Lead, wanted: dict[str, Any]) -> str:
        """Why ``lead`` cannot take the row's email or external id: another lead has it."""
        for name, label in (("email", "email"), ("external_id", "external id")):
            value = wanted.get(name)
            holder = self.holder.get((name, value)) if value else None
            if holder is not None and holder != self._me(lead):
                return f"Another lead already has the {label} “{value}”."
        return ""

    def claim(self, lead: Lead) -> None:
        for name in ("email", "external_id"):
            value = getattr(lead, name)
            if value:
                self.holder[(name, value)] = self._me(lead)


class LeadMaker:
    """New leads made from their values positionally, the way Django makes the leads it
    reads: made with keyword arguments, a lead costs about as much as cleaning its row.
    Every field not given keeps the default a lead made at ``now`` has."""

    def __init__(self, now: dt.datetime) -> None:
        template = Lead(created_at=now, stage_changed_at=now)
        names = [field.attname for field in Lead._meta.concrete_fields]
        self.position = {name: index for index, name in enumerate(names)}
        self.defaults = [getattr(template, name) for name in names]
        # Values a lead may change in place (JSON) are made anew for each lead.
        self.fresh = [i for i, value in enumerate(self.defaults) if isinstance(value, dict | list)]

    def __call__(self, values: dict[str, Any]) -> Lead:
        row = list(self.defaults)
        for index in self.fresh:
            row[index] = copy.copy(row[index])
        for name, value in values.items():
            row[self.position[name]] = value
        return Lead(*row)


def _new_lead(
    item: LeadRow, job: ImportJob, outcome: ChunkOutcome, make: LeadMaker, claims: Claims
) -> Lead | None:
    if not job.create_new:
        outcome.skipped += 1
        return None
    wanted = dict(item.wanted)
    if not wanted.get("email"):
        outcome.fail(item.row, None, "A new lead needs an email address.")
        return None
    wanted.setdefault("source", Source.IMPORT)
    lead = make(wanted)
    reason = claims.conflict(lead, wanted)
    if reason:
        outcome.fail(item.row, None, reason)
        return None
    claims.claim(lead)
    if item.company_id is not None:
        lead.company_id = item.company_id
    if item.stage:
        lead.stage = item.stage
        if item.stage == Stage.DISQUALIFIED and not lead.disqualification_reason:
            lead.disqualification_reason = DISQUALIFIED_REASON
    lead.furthest_step = funnel_step(lead.stage)
    outcome.created += 1
    return lead


def _update_lead(
    item: LeadRow,
    lead: Lead,
    outcome: ChunkOutcome,
    now: Any,
    claims: Claims,
    context: Context,
    updated: Changed,
    history: list[tuple[LeadRow, StageChange]],
) -> None:
    """Apply the row's values to a stored lead (or one this chunk creates); count it."""
    wanted = dict(item.wanted)
    if "custom_fields" in wanted:
        wanted["custom_fields"] = {**lead.custom_fields, **wanted["custom_fields"]}
    if item.company_id is not None and (item.company_named or lead.company_id is None):
        wanted["company_id"] = item.company_id
    changed = {name for name, value in wanted.items() if getattr(lead, name) != value}
    stage = item.stage if item.stage and item.stage != lead.stage else None
    if not changed and not stage:
        outcome.unchanged += 1
        return
    reason = claims.conflict(lead, {n: wanted[n] for n in ("email", "external_id") if n in changed})
    if reason:
        outcome.fail(item.row, None, reason)
        return
    if lead.pk is None:
        # Created earlier in this chunk: the later row's values go in with it.
        for name in changed:
            setattr(lead, name, wanted[name])
        if stage:
            lead.stage = stage
            lead.furthest_step = max(lead.furthest_step, funnel_step(stage))
        claims.claim(lead)
        outcome.updated += 1
        return
    if stage and not lead.can_move_to(stage):
        message = f"A lead cannot move from {Stage(lead.stage).label} to {Stage(stage).label}."
        outcome.fail(item.row, None, message)
        return
    fields = set(changed)
    if stage:
        fields |= {"stage", "stage_changed_at", "disqualification_reason", "furthest_step"}
    before = {name: getattr(lead, name) for name in fields}
    for name in changed:
        setattr(lead, name, wanted[name])
    claims.claim(lead)
    if stage:
        previous = lead.stage
        reason = wanted.get("disqualification_reason") or DISQUALIFIED_REASON
        # The lead's own transition, in memory: saved below, announced to nobody.
        lead.set_stage(stage, reason=reason, at=now)
        lead.furthest_step = max(lead.furthest_step, funnel_step(stage))
        history.append((item, _stage_change(lead, previous, context, now)))
    after = {name: getattr(lead, name) for name in fields}
    outcome.record(item.row, lead, ObjectType.LEAD, lead_id=lead.pk, before=before, after=after)
    outcome.updated += 1
    updated.add(lead, fields)


def _stage_change(lead: Lead, previous: str, context: Context, now: Any) -> StageChange:
    """The stage history row of a stage the import set (announced to nobody)."""
    return StageChange(
        lead=lead,
        from_stage=previous,
        to_stage=lead.stage,
        at=now,
        by=context.user,
        reason="Imported",
    )


def _snapshot(lead: Lead) -> dict[str, Any]:
    """What undo checks before it deletes a lead the import created."""
    fields = [*LEAD_COLUMNS, "owner_id", "company_id", "stage", "custom_fields"]
    return {name: getattr(lead, name) for name in fields}
