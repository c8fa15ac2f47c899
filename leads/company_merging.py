"""Merging duplicate companies without losing anything, and undoing a merge.

The survivor keeps its id, so outside systems that know it stay in sync. Everything
that names the other companies moves to it: their leads (and with them the leads'
deals, activities and history, which hang on the lead) and any other row whose foreign
key points at a company, in this app or an app above, found through the model's
relations. The survivor takes, field by field, the value the caller chose (by default
its own, or the first value another company has where its own is empty). The others'
rows are then deleted and their ids kept as aliases (``CompanyAlias``), which the API
answers with the survivor.

A company's fields feed the fit rules of its leads, and ``leads`` cannot import
scoring: the leads whose company changed (those moved, and the survivor's own when it
took another's value) are settled once through ``leads.merge_participants``. Scoring's
participant rescores a few in the merge's transaction, as for a lead merge; a company's
many people it records as changed there and rescores after commit on the bulk queue, so
the merge holds its locks for the move alone.

A ``CompanyMerge`` records it all: the merged companies' rows, which rows moved from
which company, the survivor's fields before and after. ``company_merge_undo`` puts the
merged companies back with their ids, moves back the rows that are still on the
survivor, restores the survivor's fields that nobody changed since (the others are kept
and reported), and settles the leads again. Merges of one survivor are undone latest
first.

The companies are locked in id order, then their leads (``LeadQuerySet.lock``), before
anything is read. The companies' ``FOR UPDATE`` holds off any lead that would be given
one of them meanwhile until the merge is over.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from crm.models import User

from .company_duplicates import company_keys_refresh
from .merge_participants import participants_settle
from .merging import MergeError, _linked
from .models import (
    Company,
    CompanyAlias,
    CompanyDomainKey,
    CompanyDuplicatePair,
    CompanyMatchKey,
    CompanyMerge,
    CompanyNameWord,
    Lead,
    PairStatus,
)
from .models.merge import ExactJSONEncoder

# The fields a company merge chooses between, by name.
COMPANY_MERGE_FIELDS = (
    "name",
    "domain",
    "industry",
    "employee_count",
    "annual_revenue",
    "country",
    "region",
    "city",
)
# The models that keep the merge's own books about companies: never moved as they are.
BOOKKEEPING: tuple[type[models.Model], ...] = (
    CompanyAlias,
    CompanyDomainKey,
    CompanyDuplicatePair,
    CompanyMatchKey,
    CompanyMerge,
    CompanyNameWord,
)
LEADS_MOVED = "leads.lead"


# --- Choosing ---------------------------------------------------------------------------


def _filled(value: Any) -> bool:
    return value not in (None, "")


def _field(name: str) -> models.Field:
    field = Company._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"Company.{name} is not a field of the company's row.")
    return field


def company_completeness(company: Company) -> int:
    """How many of the merge's fields the company has filled in."""
    return sum(_filled(getattr(company, name)) for name in COMPANY_MERGE_FIELDS)


def company_survivor_pick(companies: Sequence[Company]) -> Company:
    """The company a merge keeps by default: the most complete, and among equally
    complete ones the oldest (created first, then lowest id)."""
    if not companies:
        raise MergeError("Name the companies to merge.")
    return min(companies, key=lambda c: (-company_completeness(c), c.created_at, c.pk))


def company_merge_defaults(survivor: Company, others: Sequence[Company]) -> dict[str, int]:
    """Per field, the company whose value the survivor takes unless told otherwise: its
    own when filled, else the first of ``others`` that has one."""
    choice = {}
    for name in COMPANY_MERGE_FIELDS:
        if _filled(getattr(survivor, name)):
            choice[name] = survivor.pk
            continue
        donor = next((o for o in others if _filled(getattr(o, name))), survivor)
        choice[name] = donor.pk
    return choice


def company_merge_preview(survivor: Company, others: Sequence[Company]) -> list[dict[str, Any]]:
    """The fields on which the companies differ: each company's value and the default
    choice, for the person choosing (the admin's merge page, the API's preview)."""
    companies = [survivor, *others]
    defaults = company_merge_defaults(survivor, others)
    rows = []
    for name in COMPANY_MERGE_FIELDS:
        values = {c.pk: _jsonable(getattr(c, name)) for c in companies}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            rows.append({"field": name, "values": values, "default": defaults[name]})
    return rows


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=ExactJSONEncoder))


def _field_changes(
    survivor: Company, others: Sequence[Company], fields: dict[str, int]
) -> dict[str, Any]:
    """The fields the survivor's value changes in: from which company, before and after."""
    by_id = {c.pk: c for c in (survivor, *others)}
    choice = {**company_merge_defaults(survivor, others), **fields}
    changes = {}
    for name in COMPANY_MERGE_FIELDS:
        before = _jsonable(getattr(survivor, name))
        after = _jsonable(getattr(by_id[choice[name]], name))
        if before != after:
            changes[name] = {"from": choice[name], "before": before, "after": after}
    return changes


# --- Merging ----------------------------------------------------------------------------


def companies_merge(
    *,
    survivor_id: int,
    others: Iterable[int],
    fields: dict[str, int] | None = None,
    by: User | None = None,
) -> CompanyMerge:
    """Merge ``others`` into the company ``survivor_id``, keeping everything (module
    docstring); ``fields`` names, per conflicting field of ``COMPANY_MERGE_FIELDS``, the
    company whose value wins. Raises ``MergeError`` for companies that do not exist or a
    bad choice. Permission is the caller's to check
    (``leads.permissions.company_merge_refusal``)."""
    other_ids = _other_ids(survivor_id, others)
    ids = [survivor_id, *other_ids]
    fields = _checked_fields(fields or {}, set(ids))
    with transaction.atomic():
        list(Company.objects.filter(pk__in=ids).order_by("pk").select_for_update())
        companies = Company.objects.in_bulk(ids)
        missing = sorted(set(ids) - set(companies))
        if missing:
            raise MergeError(f"No company {', '.join(map(str, missing))}: nothing was merged.")
        Lead.objects.filter(company_id__in=ids).lock()
        survivor, merged = companies[survivor_id], [companies[pk] for pk in other_ids]
        now = timezone.now()
        merge = CompanyMerge.objects.create(
            survivor=survivor,
            survivor_ref=survivor_id,
            merged_ids=other_ids,
            snapshots={str(c.pk): _snapshot(c) for c in merged},
            fields=_field_changes(survivor, merged, fields),
            by=by,
            at=now,
        )
        own_leads = _lead_ids(survivor_id) if merge.fields else []
        moved = _rows_move(survivor_id, other_ids, now=now)
        _pairs_settle(merge, survivor_id, other_ids, by=by, now=now)
        Company.objects.filter(pk__in=other_ids).delete()
        CompanyAlias.objects.bulk_create(
            [CompanyAlias(alias_id=pk, company=survivor, merge=merge) for pk in other_ids]
        )
        _fields_apply(survivor, merge.fields)
        merge.moved = moved
        merge.save(update_fields=["moved"])
        company_keys_refresh(company_ids=[survivor_id])
        _leads_settle(_settled(own_leads, moved), now=now)
    return merge


def _other_ids(survivor_id: int, others: Iterable[int]) -> list[int]:
    other_ids = list(dict.fromkeys(int(pk) for pk in others))
    if not other_ids:
        raise MergeError("Name at least one company to merge into this one.")
    if survivor_id in other_ids:
        raise MergeError("A company cannot be merged into itself.")
    return other_ids


def _checked_fields(fields: dict[str, int], company_ids: set[int]) -> dict[str, int]:
    unknown = sorted(set(fields) - set(COMPANY_MERGE_FIELDS))
    if unknown:
        raise MergeError(f"Fields that a company merge does not choose: {', '.join(unknown)}.")
    checked = {name: int(pk) for name, pk in fields.items()}
    strangers = sorted(set(checked.values()) - company_ids)
    if strangers:
        raise MergeError(f"A field can only come from a merged company, not {strangers[0]}.")
    return checked


def _snapshot(company: Company) -> dict[str, Any]:
    return _jsonable(
        {f.attname: getattr(company, f.attname) for f in Company._meta.concrete_fields}
    )


def _lead_ids(company_id: int) -> list[int]:
    return list(Lead.objects.filter(company_id=company_id).values_list("pk", flat=True))


def _settled(own_leads: list[int], moved: dict[str, Any]) -> list[int]:
    """The leads whose company changed: those moved, and the survivor's own when its
    fields changed."""
    moved_leads = [pk for ids in moved.get(LEADS_MOVED, {}).values() for pk in ids]
    return sorted({*own_leads, *moved_leads})


def _leads_settle(lead_ids: list[int], *, now: Any) -> None:
    """Let the apps above bring what they derive from these leads up to date once: their
    company changed (scoring rescores their fit)."""
    if lead_ids:
        participants_settle(lead_ids=lead_ids, now=now)


def company_references() -> list[tuple[type[models.Model], str]]:
    """(model, foreign key column) of every row besides leads that names a company and
    moves with it in a merge, whichever app holds it."""
    return [
        (rel.related_model, rel.field.attname)
        for rel in Company._meta.related_objects
        if rel.one_to_many and rel.related_model not in (Lead, *BOOKKEEPING)
    ]


def _rows_move(survivor_id: int, other_ids: list[int], *, now: Any) -> dict[str, Any]:
    """Move what names the others to the survivor; the ids moved per kind and company.
    A moved lead's ``updated_at`` moves on: its company changed."""
    moved: dict[str, Any] = {}
    leads = Lead.objects.filter(company_id__in=other_ids)
    moved[LEADS_MOVED] = _per_company(leads, "company_id")
    leads.update(company_id=survivor_id, updated_at=now)
    for model, column in company_references():
        rows = model._default_manager.filter(**{f"{column}__in": other_ids})
        moved[f"{model._meta.label_lower}.{column}"] = _per_company(rows, column)
        rows.update(**{column: survivor_id})
    aliases = CompanyAlias.objects.filter(company_id__in=other_ids)
    moved["aliases"] = _per_company(aliases, "company_id", pk="alias_id")
    aliases.update(company_id=survivor_id)
    return moved


def _per_company(rows: models.QuerySet, column: str, *, pk: str = "pk") -> dict[str, list[Any]]:
    per_company: dict[str, list[Any]] = {}
    for row_id, company_id in rows.order_by(pk).values_list(pk, column):
        per_company.setdefault(str(company_id), []).append(row_id)
    return per_company


def _pairs_settle(
    merge: CompanyMerge, survivor_id: int, other_ids: list[int], *, by: User | None, now: Any
) -> None:
    """The review queue after a merge: the pairs among the merged companies are answered
    "merged"; an open pair of a merged company and a third becomes the survivor's
    (dropped when the survivor has one with that company already)."""
    ids = [survivor_id, *other_ids]
    CompanyDuplicatePair.objects.filter(company_a__in=ids, company_b__in=ids).update(
        status=PairStatus.MERGED, merge=merge, decided_by=by, decided_at=now
    )
    pairs = CompanyDuplicatePair.objects.open().filter(
        models.Q(company_a__in=other_ids) | models.Q(company_b__in=other_ids)
    )
    for pair in pairs:
        third = pair.company_b_id if pair.company_a_id in other_ids else pair.company_a_id
        low, high = sorted((survivor_id, third))
        if CompanyDuplicatePair.objects.filter(company_a=low, company_b=high).exists():
            pair.delete()
            continue
        pair.company_a_id, pair.company_b_id = low, high
        pair.save(update_fields=["company_a", "company_b"])


def _fields_apply(company: Company, changes: dict[str, Any], *, key: str = "after") -> None:
    """Set the recorded values (``after`` or ``before``) on the company and save them."""
    for name, change in changes.items():
        setattr(company, name, _field(name).to_python(change[key]))
    if changes:
        company.save(update_fields=list(changes))


def company_pairs_merge(
    *, pairs: Iterable[CompanyDuplicatePair], by: User | None
) -> list[CompanyMerge]:
    """Merge the companies of these pairs: companies linked through pairs into one
    survivor each (``company_survivor_pick``), every field by default, one merge (and
    transaction) per group. Pairs whose companies are gone are skipped. Permission is
    the caller's to check for every company of the pairs."""
    groups = _linked([(p.company_a_id, p.company_b_id) for p in pairs])
    merges = []
    for group in groups:
        companies = list(Company.objects.filter(pk__in=group))
        if len(companies) < 2:
            continue
        survivor = company_survivor_pick(companies)
        others = [c.pk for c in companies if c.pk != survivor.pk]
        merges.append(companies_merge(survivor_id=survivor.pk, others=others, by=by))
    return merges


# --- Undoing ----------------------------------------------------------------------------


def company_merge_undo(*, merge_id: int, by: User | None = None) -> CompanyMerge:
    """Undo a company merge: the merged companies back with their ids, the rows still on
    the survivor back where they came from, the survivor's fields restored where nobody
    changed them since (``fields[name]["kept"]`` marks the others), the leads whose
    company changed settled again. Raises ``MergeError`` when it cannot be undone: done
    already, the survivor gone, a later merge of the survivor not undone first, or a
    merged company's domain taken meanwhile."""
    with transaction.atomic():
        merge = CompanyMerge.objects.select_for_update().filter(pk=merge_id).first()
        if merge is None:
            raise MergeError("No such merge.")
        if merge.is_undone:
            raise MergeError("This merge was undone already.")
        survivor_id = merge.survivor_id
        if survivor_id is None:
            raise MergeError(
                f"Company {merge.survivor_ref} is gone (deleted, or merged into another "
                "company: undo that merge first)."
            )
        list(Company.objects.filter(pk=survivor_id).select_for_update())
        later = CompanyMerge.objects.filter(
            survivor_ref=survivor_id, undone_at__isnull=True, pk__gt=merge.pk
        ).first()
        if later is not None:
            raise MergeError(f"Undo the later merge of this company first ({later}).")
        Lead.objects.filter(company_id=survivor_id).lock()
        now = timezone.now()
        survivor = Company.objects.get(pk=survivor_id)
        restored = _fields_restore(merge, survivor)
        own_leads = _lead_ids(survivor_id) if restored else []
        _companies_restore(merge)
        moved_back = _rows_restore(merge, survivor_id, now=now)
        CompanyDuplicatePair.objects.filter(merge=merge).update(
            status=PairStatus.OPEN, merge=None, decided_by=None, decided_at=None
        )
        merge.undone_at, merge.undone_by = now, by
        merge.save(update_fields=["fields", "undone_at", "undone_by"])
        company_keys_refresh(company_ids=[survivor_id, *merge.merged_ids])
        _leads_settle(sorted({*moved_back, *own_leads}), now=now)
    return merge


def _fields_restore(merge: CompanyMerge, survivor: Company) -> dict[str, Any]:
    """The survivor's fields as before the merge, except those changed since; the
    fields restored."""
    restore = {}
    for name, change in merge.fields.items():
        if _jsonable(getattr(survivor, name)) == change["after"]:
            restore[name] = change
        else:
            change["kept"] = True
    _fields_apply(survivor, restore, key="before")
    return restore


def _companies_restore(merge: CompanyMerge) -> None:
    """Insert the merged companies' rows again, with their ids."""
    for snapshot in merge.snapshots.values():
        company = Company(
            **{f.attname: f.to_python(snapshot[f.attname]) for f in Company._meta.concrete_fields}
        )
        try:
            with transaction.atomic():
                company.save(force_insert=True)
        except IntegrityError as exc:
            holder = Company.objects.filter(domain__iexact=company.domain).first()
            if company.domain and holder is not None:
                raise MergeError(
                    f"Company {company.pk}'s domain {company.domain} is company {holder.pk}'s "
                    "now: change one of them first."
                ) from exc
            raise
        # The merges into this company lost their survivor when it was merged away.
        CompanyMerge.objects.filter(survivor_ref=company.pk, survivor__isnull=True).update(
            survivor_id=company.pk
        )


def _rows_restore(merge: CompanyMerge, survivor_id: int, *, now: Any) -> list[int]:
    """Move the rows that came from each merged company, and are still on the survivor,
    back to it; the leads moved back."""
    moved = merge.moved
    leads_back: list[int] = []
    for company_id, ids in moved.get(LEADS_MOVED, {}).items():
        leads = Lead.objects.filter(pk__in=ids, company_id=survivor_id)
        leads_back += list(leads.values_list("pk", flat=True))
        leads.update(company_id=int(company_id), updated_at=now)
    for model, column in company_references():
        for company_id, ids in moved.get(f"{model._meta.label_lower}.{column}", {}).items():
            model._default_manager.filter(pk__in=ids, **{column: survivor_id}).update(
                **{column: int(company_id)}
            )
    for company_id, alias_ids in moved.get("aliases", {}).items():
        CompanyAlias.objects.filter(alias_id__in=alias_ids).update(company_id=int(company_id))
    CompanyAlias.objects.filter(merge=merge).delete()
    return leads_back


# --- Reading ----------------------------------------------------------------------------


def company_alias_target(company_id: int) -> int | None:
    """The id of the company that a merged company's id now names, or None."""
    return (
        CompanyAlias.objects.filter(alias_id=company_id)
        .values_list("company_id", flat=True)
        .first()
    )


def company_merges_of(company_id: int) -> models.QuerySet[CompanyMerge]:
    """The merges into a company, latest first."""
    return CompanyMerge.objects.filter(survivor_ref=company_id).order_by("-at", "-pk")
