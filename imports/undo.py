"""Undoing an import as a whole, from its change records, newest first.

What the import created is deleted (activities, deals and stage changes through the
``leads`` services that keep each lead's facts; leads and companies when nothing came
to hang on them since); what it changed is restored field by field, where the field
still holds what the import wrote. Anything that changed after the import is left as
it is and reported: undo never clobbers a later edit. The leads that remain are
scored again, quietly (``scoring.quiet_rescore``), and the job is marked undone. The
review queue follows: the open duplicate pairs of deleted leads are dropped, and leads
whose email, phone, name or company came back are compared again (``leads.duplicates``).

Each chunk of change records is one transaction that marks them undone, so an undo
that stops half-way resumes where it stopped.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Max, Min, Model, OuterRef, Subquery
from django.utils import timezone

from crm.db import update_rows
from crm.resilience import task_enqueue
from leads.deals import deals_delete
from leads.duplicates import KEY_FIELDS, duplicate_pairs_forget, duplicates_note
from leads.models import Activity, Company, Deal, Lead, StageChange
from leads.stages import stage_changes_delete
from scoring.quiet_rescore import leads_rescore_quietly

from .chunks import same, stored_form
from .models import ChangeAction, ImportChange, ImportJob, ImportStatus, ObjectType
from .permissions import import_permission_check

if TYPE_CHECKING:
    from crm.models import User

CHUNK = 1000
# A failed import may have stored its first chunks: it is undone like a finished one.
UNDOABLE = (ImportStatus.DONE, ImportStatus.FAILED)
REPORT_LIMIT = 1000
MODELS: dict[str, type[Model]] = {
    ObjectType.LEAD: Lead,
    ObjectType.COMPANY: Company,
    ObjectType.DEAL: Deal,
    ObjectType.ACTIVITY: Activity,
    ObjectType.STAGE_CHANGE: StageChange,
}


class UndoError(ValueError):
    """An import that cannot be undone (not finished, a dry run, undone already)."""


class Report:
    """What undo did and what it left alone (and why), kept on the job."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self.deleted = stored.get("deleted", 0)
        self.restored = stored.get("restored", 0)
        self.kept_count = stored.get("kept_count", 0)
        self.kept: list[dict[str, Any]] = list(stored.get("kept", []))

    def keep(self, change: ImportChange, why: str) -> None:
        self.kept_count += 1
        if len(self.kept) < REPORT_LIMIT:
            self.kept.append(
                {"row": change.row, "type": change.object_type, "id": change.object_id, "why": why}
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "deleted": self.deleted,
            "restored": self.restored,
            "kept_count": self.kept_count,
            "kept": self.kept,
        }


def undo_refusal(job: ImportJob) -> str:
    """Why ``job`` cannot be undone now, or "" when it can: only a finished import that
    was not a dry run, once."""
    if job.dry_run:
        return "A dry run stored nothing, so there is nothing to undo."
    if job.status == ImportStatus.UNDONE:
        return "This import was undone already."
    if job.status in (ImportStatus.QUEUED, ImportStatus.RUNNING):
        return "This import is still running; undo it once it is done."
    if job.status not in UNDOABLE:
        return f"Only a finished import can be undone; this one is {job.status}."
    return ""


def import_job_undo_request(*, job: ImportJob, by: User | None) -> ImportJob:
    """Ask for the undo of ``job``: recorded on the job (``undo_requested_at``), then
    queued on the bulk queue after commit (``imports.tasks.import_undo``). Raises
    ``PermissionDenied`` for a person who may not import and ``UndoError`` for a job
    that cannot be undone.

    A request whose message cannot be sent (the broker down) is not lost: the beat's
    import sweep queues it again (``imports.drafts.import_drafts_sweep``). A second
    request while the first is on its way queues a run that resumes the same undo
    (each chunk of changes is claimed with its rows locked, the job marked undone
    once).
    """
    import_permission_check(by)
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        refusal = undo_refusal(locked)
        if refusal:
            raise UndoError(refusal)
        if locked.undo_requested_at is None:
            locked.undo_requested_at = timezone.now()
            locked.save(update_fields=["undo_requested_at"])
        by_id = by.pk if by is not None else None
        transaction.on_commit(partial(import_undo_enqueue, job_id=locked.pk, by_id=by_id))
    return locked


def import_undo_enqueue(*, job_id: int, by_id: int | None) -> bool:
    """Send the undo's message; whether it went (the sweep sends it again if not)."""
    return task_enqueue("imports.tasks.import_undo", job_id, by_id, what=f"Undo of import {job_id}")


def import_job_undo(*, job_id: int, by: User | None) -> ImportJob:
    """Undo a finished import (see the module); resumes an undo that stopped. Raises
    ``UndoError`` for a job that cannot be undone and ``PermissionDenied`` for a person
    who may not import."""
    import_permission_check(by)
    job = ImportJob.objects.get(pk=job_id)
    refusal = undo_refusal(job)
    if refusal:
        raise UndoError(refusal)
    report = Report(job.undo_report)
    touched = {
        lead_id
        for lead_id in job.changes.values_list("lead_id", flat=True).distinct()
        if lead_id is not None
    }
    companies = job.changes.filter(object_type=ObjectType.COMPANY).values_list(
        "object_id", flat=True
    )
    touched |= set(Lead.objects.filter(company_id__in=list(companies)).values_list("pk", flat=True))
    while _undo_chunk(job, report):
        pass
    leads_rescore_quietly(lead_ids=Lead.objects.filter(pk__in=touched).values_list("pk", flat=True))
    ImportJob.objects.filter(pk=job.pk, status__in=UNDOABLE).update(
        status=ImportStatus.UNDONE,
        undone_at=timezone.now(),
        undone_by=by,
        undo_report=report.as_dict(),
    )
    job.refresh_from_db()
    return job


def _undo_chunk(job: ImportJob, report: Report) -> bool:
    """Undo the newest chunk of changes not undone yet; False when none is left."""
    with transaction.atomic():
        changes = list(
            ImportChange.objects.select_for_update()
            .filter(job=job, undone=False)
            .order_by("-id")[:CHUNK]
        )
        if not changes:
            return False
        by_type: dict[tuple[str, str], list[ImportChange]] = defaultdict(list)
        for change in changes:
            by_type[(change.object_type, change.action)].append(change)
        # History first, then the leads it hung on, then their companies.
        for object_type in (
            ObjectType.ACTIVITY,
            ObjectType.DEAL,
            ObjectType.STAGE_CHANGE,
            ObjectType.LEAD,
            ObjectType.COMPANY,
        ):
            _restore(by_type.get((object_type, ChangeAction.UPDATED), []), object_type, report)
            _delete(by_type.get((object_type, ChangeAction.CREATED), []), object_type, job, report)
        ImportChange.objects.filter(pk__in=[c.pk for c in changes]).update(undone=True)
        ImportJob.objects.filter(pk=job.pk).update(
            undo_report=report.as_dict(), progress_at=timezone.now()
        )
    return True


def _restore(changes: list[ImportChange], object_type: str, report: Report) -> None:
    """Put back the ``before`` values of fields that still hold the ``after`` ones."""
    if not changes:
        return
    model = MODELS[object_type]
    objects = model._default_manager.select_for_update().in_bulk([c.object_id for c in changes])
    compared: list[int] = []  # leads whose keys the restored values change
    for change in changes:
        obj = objects.get(change.object_id)
        if obj is None:
            report.keep(change, "deleted since the import")
            continue
        fields = [n for n in change.before if same(model, n, getattr(obj, n), change.after.get(n))]
        moved = sorted(set(change.before) - set(fields))
        if moved:
            report.keep(change, f"changed since the import: {', '.join(moved)}")
        for name in fields:
            setattr(obj, name, stored_form(model, name, change.before[name]))
        if fields:
            update_rows([obj], fields)
            report.restored += 1
            if object_type == ObjectType.LEAD and KEY_FIELDS.intersection(fields):
                compared.append(obj.pk)
    duplicates_note(lead_ids=compared)
    if object_type == ObjectType.DEAL:
        lead_ids = {c.lead_id for c in changes if c.lead_id}
        Lead.objects.filter(pk__in=lead_ids).refresh_deal_outcome()


def _delete(changes: list[ImportChange], object_type: str, job: ImportJob, report: Report) -> None:
    if not changes:
        return
    ids = [c.object_id for c in changes]
    if object_type == ObjectType.ACTIVITY:
        lead_ids = {c.lead_id for c in changes if c.lead_id}
        report.deleted += Activity.objects.filter(pk__in=ids).delete()[1].get("leads.Activity", 0)
        _refresh_activity_spans(lead_ids)
    elif object_type == ObjectType.DEAL:
        report.deleted += deals_delete(deals=Deal.objects.filter(pk__in=ids))
    elif object_type == ObjectType.STAGE_CHANGE:
        report.deleted += stage_changes_delete(changes=StageChange.objects.filter(pk__in=ids))
    elif object_type == ObjectType.LEAD:
        _delete_leads(changes, job, report)
    else:
        _delete_companies(changes, report)


def _delete_leads(changes: list[ImportChange], job: ImportJob, report: Report) -> None:
    """Delete the leads the import created, unless they changed or gained history since."""
    leads = Lead.objects.select_for_update().in_bulk([c.object_id for c in changes])
    own_changes = set(
        job.changes.filter(object_type=ObjectType.STAGE_CHANGE).values_list("object_id", flat=True)
    )
    doomed = []
    for change in changes:
        lead = leads.get(change.object_id)
        if lead is None:
            continue
        why = _lead_moved_on(lead, change, own_changes)
        if why:
            report.keep(change, why)
        else:
            doomed.append(lead.pk)
    if doomed:
        Lead.objects.filter(pk__in=doomed).delete()
        duplicate_pairs_forget(lead_ids=doomed)
        report.deleted += len(doomed)


def _lead_moved_on(lead: Lead, change: ImportChange, own_changes: set[int]) -> str:
    moved = [n for n, v in change.after.items() if not same(Lead, n, getattr(lead, n), v)]
    if moved:
        return f"changed since the import: {', '.join(sorted(moved))}"
    for name, related in (
        ("activities", lead.activities.all()),
        ("deals", lead.deals.all()),
        ("notes", lead.notes.all()),
        ("tasks", lead.tasks.all()),
        ("hand-offs", lead.handoffs.all()),
        ("stage changes", lead.stage_changes.exclude(pk__in=own_changes)),
    ):
        if related.exists():
            return f"has {name} added since the import"
    return ""


def _delete_companies(changes: list[ImportChange], report: Report) -> None:
    """Delete the companies the import created that no lead works for any more."""
    ids = [c.object_id for c in changes]
    used = set(Lead.objects.filter(company_id__in=ids).values_list("company_id", flat=True))
    for change in changes:
        if change.object_id in used:
            report.keep(change, "leads work for it")
    free = [pk for pk in ids if pk not in used]
    report.deleted += Company.objects.filter(pk__in=free).delete()[1].get("leads.Company", 0)


def _refresh_activity_spans(lead_ids: set[int]) -> None:
    """Work the leads' first and last activity times out again from what is left."""
    activities = Activity.objects.filter(lead_id=OuterRef("pk")).order_by().values("lead_id")
    Lead.objects.filter(pk__in=lead_ids).update(
        first_activity_at=Subquery(activities.annotate(at=Min("occurred_at")).values("at")),
        last_activity_at=Subquery(activities.annotate(at=Max("occurred_at")).values("at")),
    )
