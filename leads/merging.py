"""Merging duplicate leads without losing anything, and undoing a merge.

The survivor keeps its id, so outside systems that know it stay in sync. Everything on
the other leads moves to it: activities, stage history, deals, tasks, notes, hand-offs,
notifications, ratings, tracking identities and product interests here; the score
ledger and the nurture enrollments in the apps above, which take part through
``leads.merge_participants``. The survivor takes, field by field, the value the caller
chose (by default its own, or the first value another lead has where its own is
empty). The others' rows are then deleted and their ids kept as aliases
(``LeadAlias``), which the API answers with the survivor. The survivor is rescored once
(scoring's participant).

A ``LeadMerge`` records it all: the merged leads' rows, which rows moved from which
lead, the survivor's fields before and after. ``lead_merge_undo`` puts the merged leads
back with their ids and their rows, restores the survivor's fields that nobody changed
since (the others are kept and reported), and rescores them all. Merges of one
survivor are undone latest first.

Every lead involved is locked in id order (``LeadQuerySet.lock``) before anything is
read, as every writer of several leads does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, models, transaction
from django.db.models import Max, Min, OuterRef, Subquery
from django.utils import timezone

from crm.models import User

from .handoff_models import HandOff, HandOffStatus, LeadRating, Notification
from .merge_participants import participants_move, participants_restore, participants_settle
from .models import (
    Activity,
    Company,
    CompanyAlias,
    Deal,
    DuplicatePair,
    Lead,
    LeadAlias,
    LeadMerge,
    Note,
    PairStatus,
    StageChange,
    Task,
)
from .models.merge import ExactJSONEncoder
from .profiles import lead_save_profile
from .stages import stage_changes_delete
from .tracking_models import TrackingIdentity

# The profile fields a merge chooses between, by name. ``email_status`` follows the
# email address it describes.
MERGE_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "job_title",
    "seniority",
    "department",
    "company",
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
    "owner",
    "custom_fields",
)

# The rows of a lead that move to the survivor as they are: model, in the order moved.
MOVED_MODELS: tuple[type[models.Model], ...] = (
    Activity,
    StageChange,
    Deal,
    Task,
    Note,
    HandOff,
    Notification,
    TrackingIdentity,
    LeadRating,
)


class MergeError(Exception):
    """A merge or an undo that cannot be done; the message says why, for a person."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else "The merge cannot be done."


# --- Choosing ---------------------------------------------------------------------------


def _filled(value: Any) -> bool:
    return value not in (None, "", {}, [])


def lead_completeness(lead: Lead) -> int:
    """How many of the merge's profile fields the lead has filled in."""
    return sum(_filled(getattr(lead, _attname(name))) for name in MERGE_FIELDS)


def lead_survivor_pick(leads: Sequence[Lead]) -> Lead:
    """The lead a merge keeps by default: the most complete profile, and among equally
    complete ones the oldest (created first, then lowest id), whose id outside systems
    are likeliest to know."""
    if not leads:
        raise MergeError("Name the leads to merge.")
    return min(leads, key=lambda lead: (-lead_completeness(lead), lead.created_at, lead.pk))


def _field(name: str) -> models.Field:
    field = Lead._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"Lead.{name} is not a field of the lead's row.")
    return field


def _attname(name: str) -> str:
    return _field(name).attname


def merge_defaults(survivor: Lead, others: Sequence[Lead]) -> dict[str, int]:
    """Per field, the lead whose value the survivor takes unless told otherwise: its
    own when filled, else the first of ``others`` that has one."""
    choice = {}
    for name in MERGE_FIELDS:
        if name == "custom_fields" or _filled(getattr(survivor, _attname(name))):
            choice[name] = survivor.pk
            continue
        donor = next((o for o in others if _filled(getattr(o, _attname(name)))), survivor)
        choice[name] = donor.pk
    return choice


def merge_preview(survivor: Lead, others: Sequence[Lead]) -> list[dict[str, Any]]:
    """The fields on which the leads differ: each lead's value and the default choice,
    for the person choosing (the admin's merge page, the API's preview)."""
    leads = [survivor, *others]
    defaults = merge_defaults(survivor, others)
    rows = []
    for name in MERGE_FIELDS:
        values = {lead.pk: _display(lead, name) for lead in leads}
        if len({json.dumps(v, sort_keys=True, cls=ExactJSONEncoder) for v in values.values()}) > 1:
            rows.append({"field": name, "values": values, "default": defaults[name]})
    return rows


def _display(lead: Lead, name: str) -> Any:
    value = getattr(lead, _attname(name))
    return value if name != "company" or value is None else getattr(lead.company, "name", value)


def _chosen_values(
    survivor: Lead, others: Sequence[Lead], fields: dict[str, int]
) -> dict[str, tuple[int, Any]]:
    """Per field the survivor takes: (the lead it comes from, the value by attname)."""
    by_id = {lead.pk: lead for lead in (survivor, *others)}
    choice = {**merge_defaults(survivor, others), **fields}
    values: dict[str, tuple[int, Any]] = {}
    for name in MERGE_FIELDS:
        source = by_id[choice[name]]
        if name == "custom_fields" and name not in fields:
            merged: dict[str, Any] = {}
            for lead in reversed((survivor, *others)):
                merged.update({k: v for k, v in lead.custom_fields.items() if _filled(v)})
            values[name] = (survivor.pk, {**merged, **survivor.custom_fields})
            continue
        values[name] = (source.pk, getattr(source, _attname(name)))
    email_from = values["email"][0]
    values["email_status"] = (email_from, by_id[email_from].email_status)
    return values


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=ExactJSONEncoder))


# --- Merging ----------------------------------------------------------------------------


def leads_merge(
    *,
    survivor_id: int,
    others: Iterable[int],
    fields: dict[str, int] | None = None,
    by: User | None = None,
) -> LeadMerge:
    """Merge ``others`` into the lead ``survivor_id``, keeping everything (module
    docstring); ``fields`` names, per conflicting field of ``MERGE_FIELDS``, the lead
    whose value wins. Raises ``MergeError`` for leads that do not exist or a bad choice.
    Permission is the caller's to check (``leads.permissions.merge_refusal``)."""
    other_ids = _other_ids(survivor_id, others)
    fields = _checked_fields(fields or {}, {survivor_id, *other_ids})
    with transaction.atomic():
        Lead.objects.filter(pk__in=[survivor_id, *other_ids]).lock(for_delete=True)
        leads = Lead.objects.select_related("company").in_bulk([survivor_id, *other_ids])
        missing = sorted({survivor_id, *other_ids} - set(leads))
        if missing:
            raise MergeError(f"No lead {', '.join(map(str, missing))}: nothing was merged.")
        survivor, merged = leads[survivor_id], [leads[pk] for pk in other_ids]
        now = timezone.now()
        values = _chosen_values(survivor, merged, fields)
        merge = LeadMerge.objects.create(
            survivor=survivor,
            survivor_ref=survivor_id,
            merged_ids=other_ids,
            snapshots={str(lead.pk): _snapshot(lead) for lead in merged},
            fields=_field_changes(survivor, values),
            by=by,
            at=now,
        )
        moved = _rows_move(survivor, other_ids)
        moved.update(participants_move(survivor_id=survivor_id, other_ids=other_ids, now=now))
        _pairs_settle(merge, survivor_id, other_ids, by=by, now=now)
        Lead.objects.filter(pk__in=other_ids).delete()
        LeadAlias.objects.bulk_create(
            [LeadAlias(alias_id=pk, lead=survivor, merge=merge) for pk in other_ids]
        )
        _fields_apply(survivor, merge.fields)
        _facts_refresh([survivor_id])
        last_change = _last_stage_change(survivor_id)
        participants_settle(lead_ids=[survivor_id], now=now)
        moved["stage_moves"] = _stage_moves_since(
            survivor_id, after=last_change, changed_at=survivor.stage_changed_at
        )
        merge.moved = moved
        merge.save(update_fields=["moved"])
    return merge


def _last_stage_change(lead_id: int) -> int:
    return (
        StageChange.objects.filter(lead_id=lead_id)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
        or 0
    )


def _stage_moves_since(lead_id: int, *, after: int, changed_at: dt.datetime) -> dict[str, Any]:
    """The moves the system made of the survivor while the merge settled it (its rescore
    crossing a threshold): the stage it had before and since when, and the changes, for
    the undo."""
    changes = list(
        StageChange.objects.filter(lead_id=lead_id, pk__gt=after, by__isnull=True)
        .order_by("pk")
        .values_list("pk", "from_stage")
    )
    if not changes:
        return {}
    return {
        "from": changes[0][1],
        "since": changed_at.isoformat(),
        "changes": [pk for pk, _ in changes],
    }


def _other_ids(survivor_id: int, others: Iterable[int]) -> list[int]:
    other_ids = list(dict.fromkeys(int(pk) for pk in others))
    if not other_ids:
        raise MergeError("Name at least one lead to merge into this one.")
    if survivor_id in other_ids:
        raise MergeError("A lead cannot be merged into itself.")
    return other_ids


def _checked_fields(fields: dict[str, int], lead_ids: set[int]) -> dict[str, int]:
    unknown = sorted(set(fields) - set(MERGE_FIELDS))
    if unknown:
        raise MergeError(f"Fields that a merge does not choose: {', '.join(unknown)}.")
    checked = {name: int(pk) for name, pk in fields.items()}
    strangers = sorted({pk for pk in checked.values()} - lead_ids)
    if strangers:
        raise MergeError(f"A field can only come from a merged lead, not {strangers[0]}.")
    return checked


def _snapshot(lead: Lead) -> dict[str, Any]:
    row = {f.attname: getattr(lead, f.attname) for f in Lead._meta.concrete_fields}
    row["product_interests"] = sorted(lead.product_interests.values_list("pk", flat=True))
    return _jsonable(row)


def _field_changes(survivor: Lead, values: dict[str, tuple[int, Any]]) -> dict[str, Any]:
    """The fields the survivor's value changes in: from which lead, before and after."""
    changes = {}
    for name, (source, value) in values.items():
        before = _jsonable(getattr(survivor, _attname(name)))
        after = _jsonable(value)
        if before != after:
            changes[name] = {"from": source, "before": before, "after": after}
    return changes


def _rows_move(survivor: Lead, other_ids: list[int]) -> dict[str, Any]:
    """Move the others' rows to the survivor; the ids moved per model and lead."""
    moved: dict[str, Any] = {"ratings_deleted": _ratings_make_room(survivor.pk, other_ids)}
    for model in MOVED_MODELS:
        rows = model._default_manager.filter(lead_id__in=other_ids)
        per_lead: dict[str, list[int]] = {}
        for pk, lead_id in rows.order_by("pk").values_list("pk", "lead_id"):
            per_lead.setdefault(str(lead_id), []).append(pk)
        rows.update(lead_id=survivor.pk)
        moved[model._meta.label_lower] = per_lead
    moved["product_interests"] = _interests_move(survivor, other_ids)
    moved["aliases"] = _aliases_move(survivor.pk, other_ids)
    return moved


def _ratings_make_room(survivor_id: int, other_ids: list[int]) -> list[dict[str, Any]]:
    """A person rates a lead once: of several ratings by one person the survivor keeps
    its own, else the newest; the others are deleted, and kept in the record."""
    ratings = LeadRating.objects.filter(lead_id__in=[survivor_id, *other_ids], by__isnull=False)
    kept: dict[int, LeadRating] = {}
    doomed = []
    for rating in ratings.order_by("-created_at", "-pk"):
        holder = kept.get(rating.by_id)  # type: ignore[arg-type]
        if holder is None:
            kept[rating.by_id] = rating  # type: ignore[index]
        elif rating.lead_id == survivor_id and holder.lead_id != survivor_id:
            doomed.append(holder)
            kept[rating.by_id] = rating  # type: ignore[index]
        else:
            doomed.append(rating)
    snapshots = [
        _jsonable({f.attname: getattr(r, f.attname) for f in LeadRating._meta.concrete_fields})
        for r in doomed
    ]
    LeadRating.objects.filter(pk__in=[r.pk for r in doomed]).delete()
    return snapshots


def _interests_move(survivor: Lead, other_ids: list[int]) -> list[int]:
    """Give the survivor the others' product interests; the ones it did not have."""
    through = Lead.product_interests.through
    own = set(through.objects.filter(lead_id=survivor.pk).values_list("productline_id", flat=True))
    theirs = set(
        through.objects.filter(lead_id__in=other_ids).values_list("productline_id", flat=True)
    )
    added = sorted(theirs - own)
    survivor.product_interests.add(*added)
    return added


def _aliases_move(survivor_id: int, other_ids: list[int]) -> dict[str, list[int]]:
    """Ids merged into the others earlier now name the survivor."""
    aliases = LeadAlias.objects.filter(lead_id__in=other_ids)
    per_lead: dict[str, list[int]] = {}
    for alias_id, lead_id in aliases.values_list("alias_id", "lead_id"):
        per_lead.setdefault(str(lead_id), []).append(alias_id)
    aliases.update(lead_id=survivor_id)
    return per_lead


def _pairs_settle(
    merge: LeadMerge, survivor_id: int, other_ids: list[int], *, by: User | None, now: dt.datetime
) -> None:
    """The review queue after a merge: the pairs among the merged leads are answered
    "merged"; an open pair of a merged lead and a third lead becomes the survivor's
    (dropped when the survivor has one with that lead already)."""
    ids = [survivor_id, *other_ids]
    DuplicatePair.objects.filter(lead_a__in=ids, lead_b__in=ids).update(
        status=PairStatus.MERGED, merge=merge, decided_by=by, decided_at=now
    )
    pairs = DuplicatePair.objects.open().filter(
        models.Q(lead_a__in=other_ids) | models.Q(lead_b__in=other_ids)
    )
    for pair in pairs:
        third = pair.lead_b_id if pair.lead_a_id in other_ids else pair.lead_a_id
        low, high = sorted((survivor_id, third))
        if DuplicatePair.objects.filter(lead_a=low, lead_b=high).exists():
            pair.delete()
            continue
        pair.lead_a_id, pair.lead_b_id = low, high
        pair.save(update_fields=["lead_a", "lead_b"])


def _fields_apply(lead: Lead, changes: dict[str, Any], *, key: str = "after") -> list[str]:
    """Set the recorded values (``after`` or ``before``) on the lead and save them."""
    for name, change in changes.items():
        field = _field(name)
        setattr(lead, field.attname, field.to_python(change[key]))
    names = list(changes)
    if names:
        lead_save_profile(lead=lead, changed_fields=names)
    return names


def _facts_refresh(lead_ids: list[int]) -> None:
    """The report facts and the activity span of leads whose history moved."""
    leads = Lead.objects.filter(pk__in=lead_ids)
    leads.refresh_facts()
    span = Activity.objects.filter(lead=OuterRef("pk")).order_by().values("lead")
    leads.update(
        first_activity_at=Subquery(span.annotate(t=Min("occurred_at")).values("t")),
        last_activity_at=Subquery(span.annotate(t=Max("occurred_at")).values("t")),
    )


def duplicate_pairs_merge(*, pairs: Iterable[DuplicatePair], by: User | None) -> list[LeadMerge]:
    """Merge the leads of these pairs: leads linked through pairs (a ≈ b, b ≈ c) into
    one survivor each (``lead_survivor_pick``), every field by default, one merge (and
    transaction) per group. Pairs whose leads are gone are skipped. Permission is the
    caller's to check for every lead of the pairs."""
    groups = _linked([(p.lead_a_id, p.lead_b_id) for p in pairs])
    merges = []
    for group in groups:
        leads = list(Lead.objects.filter(pk__in=group))
        if len(leads) < 2:
            continue
        survivor = lead_survivor_pick(leads)
        others = [lead.pk for lead in leads if lead.pk != survivor.pk]
        merges.append(leads_merge(survivor_id=survivor.pk, others=others, by=by))
    return merges


def _linked(edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """The groups of ids that the edges connect, each sorted, smallest first."""
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in edges:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for node in parent:
        groups.setdefault(root(node), []).append(node)
    return sorted(sorted(group) for group in groups.values())


# --- Undoing ----------------------------------------------------------------------------


def lead_merge_undo(*, merge_id: int, by: User | None = None) -> LeadMerge:
    """Undo a merge: the merged leads back with their ids and rows, the survivor's fields
    restored where nobody changed them since (``fields[name]["kept"]`` marks the others),
    every lead rescored. Raises ``MergeError`` when it cannot be undone: done already,
    the survivor gone, or a later merge of the survivor not undone first."""
    with transaction.atomic():
        merge = LeadMerge.objects.select_for_update().filter(pk=merge_id).first()
        if merge is None:
            raise MergeError("No such merge.")
        if merge.is_undone:
            raise MergeError("This merge was undone already.")
        survivor_id = merge.survivor_id
        if survivor_id is None:
            raise MergeError(
                f"Lead {merge.survivor_ref} is gone (deleted, or merged into another lead: "
                "undo that merge first)."
            )
        lead_ids = [survivor_id, *merge.merged_ids]
        Lead.objects.filter(pk=survivor_id).lock()
        later = LeadMerge.objects.filter(
            survivor_ref=survivor_id, undone_at__isnull=True, pk__gt=merge.pk
        ).first()
        if later is not None:
            raise MergeError(f"Undo the later merge of this lead first ({later}).")
        now = timezone.now()
        survivor = Lead.objects.get(pk=survivor_id)
        _fields_restore(merge, survivor)
        _stage_restore(merge, survivor)
        _leads_restore(merge)
        _rows_restore(merge, survivor)
        participants_restore(survivor_id=survivor_id, records=merge.moved, now=now)
        DuplicatePair.objects.filter(merge=merge).update(
            status=PairStatus.OPEN, merge=None, decided_by=None, decided_at=None
        )
        merge.undone_at, merge.undone_by = now, by
        merge.save(update_fields=["fields", "moved", "undone_at", "undone_by"])
        _facts_refresh(lead_ids)
        participants_settle(lead_ids=lead_ids, now=now)
    return merge


def _fields_restore(merge: LeadMerge, survivor: Lead) -> None:
    """The survivor's fields as before the merge, except those changed since."""
    restore = {}
    for name, change in merge.fields.items():
        current = _jsonable(getattr(survivor, _attname(name)))
        if current == change["after"]:
            restore[name] = change
        else:
            change["kept"] = True
    _fields_apply(survivor, restore, key="before")


def _stage_restore(merge: LeadMerge, survivor: Lead) -> None:
    """Take back the stage moves the merge's rescore made, with their hand-offs, when
    nothing happened since: the survivor's last stage change is the merge's and its
    hand-off, if any, is still waiting. Otherwise the survivor keeps its stage and the
    record says so (``kept``); the undo's rescore then decides afresh, as for any lead."""
    moves = merge.moved.get("stage_moves") or {}
    if not moves or moves.get("kept") or moves.get("undone"):
        return
    ids = moves["changes"]
    untouched = (
        _last_stage_change(survivor.pk) == ids[-1]
        and not HandOff.objects.filter(stage_change_id__in=ids)
        .exclude(status=HandOffStatus.PENDING)
        .exists()
    )
    if not untouched:
        moves["kept"] = True
        return
    stage_changes_delete(changes=StageChange.objects.filter(pk__in=ids, lead_id=survivor.pk))
    survivor.stage = moves["from"]
    survivor.stage_changed_at = dt.datetime.fromisoformat(moves["since"])
    survivor.save(update_fields=["stage", "stage_changed_at", "updated_at"])
    moves["undone"] = True


def _leads_restore(merge: LeadMerge) -> None:
    """Insert the merged leads' rows again, with their ids and product interests."""
    users = set(User.objects.values_list("pk", flat=True).filter(pk__in=_refs(merge, "owner_id")))
    companies = set(
        Company.objects.values_list("pk", flat=True).filter(pk__in=_refs(merge, "company_id"))
    )
    # A company merged into another since: the lead comes back at the surviving company.
    merged_companies = dict(
        CompanyAlias.objects.filter(alias_id__in=_refs(merge, "company_id")).values_list(
            "alias_id", "company_id"
        )
    )
    for snapshot in merge.snapshots.values():
        row = dict(snapshot)
        interests = row.pop("product_interests", [])
        lead = Lead(**{f.attname: f.to_python(row[f.attname]) for f in Lead._meta.concrete_fields})
        lead.owner_id = lead.owner_id if lead.owner_id in users else None
        if lead.company_id is not None and lead.company_id not in companies:
            lead.company_id = merged_companies.get(lead.company_id)
        try:
            with transaction.atomic():
                lead.save(force_insert=True)
        except IntegrityError as exc:
            holder = Lead.objects.filter(email__iexact=lead.email).first()
            if holder is not None:
                raise MergeError(
                    f"Lead {lead.pk}'s address {lead.email} is lead {holder.pk}'s now: "
                    "change one of them first."
                ) from exc
            raise
        lead.product_interests.set(interests)
        # The merges into this lead lost their survivor when it was merged away.
        LeadMerge.objects.filter(survivor_ref=lead.pk, survivor__isnull=True).update(
            survivor_id=lead.pk
        )


def _refs(merge: LeadMerge, attname: str) -> list[int]:
    return [s[attname] for s in merge.snapshots.values() if s.get(attname) is not None]


def _rows_restore(merge: LeadMerge, survivor: Lead) -> None:
    """Move the rows that came from each merged lead back to it."""
    moved = merge.moved
    for model in MOVED_MODELS:
        for lead_id, ids in moved.get(model._meta.label_lower, {}).items():
            model._default_manager.filter(pk__in=ids, lead_id=survivor.pk).update(
                lead_id=int(lead_id)
            )
    for row in moved.get("ratings_deleted", []):
        fields = {f.attname: f.to_python(row[f.attname]) for f in LeadRating._meta.concrete_fields}
        if Lead.objects.filter(pk=fields["lead_id"]).exists():
            LeadRating.objects.get_or_create(
                lead_id=fields["lead_id"], by_id=fields["by_id"], defaults=fields
            )
    added = moved.get("product_interests", [])
    if added:
        survivor.product_interests.remove(*added)
    for lead_id, alias_ids in moved.get("aliases", {}).items():
        LeadAlias.objects.filter(alias_id__in=alias_ids).update(lead_id=int(lead_id))
    LeadAlias.objects.filter(merge=merge).delete()


# --- Reading ----------------------------------------------------------------------------


def lead_alias_target(lead_id: int) -> int | None:
    """The id of the lead that a merged lead's id now names, or None."""
    return LeadAlias.objects.filter(alias_id=lead_id).values_list("lead_id", flat=True).first()


def merges_of(lead_id: int) -> models.QuerySet[LeadMerge]:
    """The merges into a lead, latest first."""
    return LeadMerge.objects.filter(survivor_ref=lead_id).order_by("-at", "-pk")
