"""The import page: upload a file, map its columns, preview the first rows as they will
be stored, run it (as a dry run first, if wanted) with its progress, download the
failed rows to fix and import again, and undo an import as a whole.

Every step goes through ``imports.drafts`` and ``imports.services``, which the admin,
the API and the command use too, and asks ``imports.permissions``: reps get 403, and a
job outside ``jobs_visible_to`` is a 404 whatever its id. While a job runs, its page
polls its progress partial (htmx, every second) until the job is finished.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm.http import AuthenticatedHttpRequest
from imports.drafts import (
    DraftError,
    import_custom_fields_create,
    import_job_again,
    import_job_map,
    import_job_resume_request,
    import_job_start,
    import_mapping_apply,
    import_mapping_save,
    import_mappings_for,
    may_add_custom_fields,
)
from imports.mapping import MappingError, targets_for
from imports.models import ImportJob, ImportMapping, ImportStatus
from imports.permissions import REFUSED, jobs_visible_to, may_import
from imports.reading import ImportFileError
from imports.services import (
    import_error_rows,
    import_job_create,
    import_preview,
    import_unfit_values,
)
from imports.undo import UndoError, import_job_undo_request
from workspace.import_forms import ImportMappingForm, ImportUploadForm

JOBS_PER_PAGE = 50
PREVIEW_ROWS = 20
RUNNING = (ImportStatus.QUEUED, ImportStatus.RUNNING)


def _check(request: AuthenticatedHttpRequest) -> None:
    if not may_import(request.user):
        raise PermissionDenied(REFUSED)


def _job(request: AuthenticatedHttpRequest, pk: int) -> ImportJob:
    _check(request)
    return get_object_or_404(jobs_visible_to(request.user), pk=pk)


@login_required
@require_GET
def import_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The imports the person may see, newest first."""
    _check(request)
    jobs = jobs_visible_to(request.user).select_related("created_by")
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "workspace/imports.html", {"page": page})


@login_required
@require_http_methods(["GET", "POST"])
def import_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Upload a file as a draft, mapped by the closest saved mapping of its source or
    by its headers, and go on to its mapping."""
    _check(request)
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        upload = data["file"]
        try:
            job = import_job_create(
                file=upload,
                file_name=upload.name,
                kind=data["kind"],
                by=request.user,
                draft=True,
                encoding=data["encoding"].strip(),
                delimiter=data["delimiter"],
                sheet=data["sheet"].strip(),
            )
        except ImportFileError as exc:
            form.add_error("file", str(exc))
        except MappingError as exc:
            form.add_error(None, exc.messages)
        else:
            saved = import_mappings_for(kind=job.kind, headers=job.headers)
            if saved:
                try:
                    job = import_mapping_apply(job=job, saved=saved[0], by=request.user)
                except MappingError:
                    pass  # The suggestion from the headers stays; the page lets them choose.
                else:
                    messages.info(request, f"Mapped as “{saved[0].name}”, saved before.")
            return redirect("import-map", pk=job.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "workspace/import_new.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def import_map(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Choose each column's field, the constants, value maps and options; on success
    (and, if named, saved for the source) go on to the preview."""
    job = _job(request, pk)
    if job.status != ImportStatus.DRAFT:
        return redirect("import-detail", pk=job.pk)
    saved = import_mappings_for(kind=job.kind, headers=job.headers)
    if request.method == "POST" and request.POST.get("use_saved"):
        chosen = ImportMapping.objects.filter(pk=request.POST["use_saved"], kind=job.kind).first()
        if chosen is None:
            messages.error(request, "That saved mapping no longer exists.")
        else:
            try:
                import_mapping_apply(job=job, saved=chosen, by=request.user)
                messages.success(request, f"Mapped as “{chosen.name}”.")
            except (MappingError, DraftError) as exc:
                messages.error(request, str(exc))
        return redirect("import-map", pk=job.pk)
    form = ImportMappingForm(
        request.POST or None, job=job, new_custom_fields=may_add_custom_fields(request.user)
    )
    if request.method == "POST" and form.is_valid():
        try:
            job = _map(request, job, form)
            if form.cleaned_data["save_as"]:
                import_mapping_save(job=job, name=form.cleaned_data["save_as"], by=request.user)
                messages.success(request, f"Mapping saved as “{form.cleaned_data['save_as']}”.")
        except MappingError as exc:
            form.add_error(None, exc.messages)
        except ValidationError as exc:
            form.add_error(None, [f"A new custom field: {message}" for message in exc.messages])
        except DraftError as exc:
            messages.error(request, str(exc))
            return redirect("import-detail", pk=job.pk)
        else:
            return redirect("import-detail", pk=job.pk)
    context = {"job": job, "form": form, "saved": saved}
    status = 400 if request.method == "POST" else 200
    return render(request, "workspace/import_map.html", context, status=status)


def _map(request: AuthenticatedHttpRequest, job: ImportJob, form: ImportMappingForm) -> ImportJob:
    """Map the draft as the form says, first adding the custom fields it asks for: all
    of it or, when the mapping does not fit, none of it."""
    arguments = form.map_arguments()
    with transaction.atomic():
        new_fields = form.cleaned_data["new_custom_fields"]
        if new_fields:
            added = import_custom_fields_create(job=job, headers=new_fields, by=request.user)
            arguments["mapping"] = {**arguments["mapping"], **added}
        return import_job_map(job=job, by=request.user, **arguments)


@login_required
@require_GET
def import_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """A draft's preview and its start buttons; a started job's progress and outcome."""
    job = _job(request, pk)
    context: dict[str, object] = {"job": job}
    if job.status == ImportStatus.DRAFT:
        try:
            context["preview"] = _preview(job)
            context["unfit"] = import_unfit_values(job=job)
        except (ImportFileError, MappingError) as exc:
            context["preview_error"] = str(exc)
    return render(request, "workspace/import_detail.html", context)


def _preview(job: ImportJob) -> dict[str, object]:
    """The mapped fields as columns and each previewed row's values and errors."""
    targets = targets_for(job.kind)
    fields = [name for name in targets if name in job.mapping.values() or name in job.constants]
    column_of = {target: header for header, target in job.mapping.items()}
    rows = []
    for number, values, errors in import_preview(job=job, rows=PREVIEW_ROWS):
        cells = []
        for name in fields:
            error = errors.get(column_of.get(name, name)) or errors.get(name)
            value = values.get(name)
            labels = dict(targets[name].choices)
            shown = labels.get(value, value) if isinstance(value, str) else value
            cells.append({"value": "" if value is None else shown, "error": error})
        rows.append({"number": number, "cells": cells, "failed": bool(errors)})
    return {
        "columns": [targets[name].label for name in fields],
        "rows": rows,
        "failing": sum(1 for row in rows if row["failed"]),
    }


EMPTY = "__empty__"


@login_required
@require_POST
def import_values(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Map the words a pick-list column holds onto its values (or to empty): added to
    the draft's value maps, then back to the preview."""
    job = _job(request, pk)
    targets = targets_for(job.kind)
    maps = {target: dict(words) for target, words in job.value_maps.items()}
    refused = []
    for key, word in request.POST.items():
        if not key.startswith("word-"):
            continue
        target, _, index = key.removeprefix("word-").rpartition("-")
        chosen = request.POST.get(f"value-{target}-{index}", "")
        if not chosen or target not in targets:
            continue
        allowed = {stored for stored, _ in targets[target].choices}
        if chosen != EMPTY and chosen not in allowed:
            refused.append(f"“{chosen}” is not a value of {targets[target].label}.")
            continue
        maps.setdefault(target, {})[word] = "" if chosen == EMPTY else chosen
    if refused:
        messages.error(request, " ".join(refused))
        return redirect("import-detail", pk=job.pk)
    try:
        import_job_map(
            job=job,
            by=request.user,
            mapping=job.mapping,
            constants=job.constants,
            value_maps=maps,
        )
    except (MappingError, DraftError) as exc:
        messages.error(request, str(exc))
    return redirect("import-detail", pk=job.pk)


@login_required
@require_GET
def import_progress(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The progress partial a running job's page polls."""
    job = _job(request, pk)
    return render(request, "workspace/_import_progress.html", {"job": job})


@login_required
@require_POST
def import_start(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Start a mapped draft, as a dry run or for real; or, for a finished dry run or a
    failed job, a new run of the same file and mapping."""
    job = _job(request, pk)
    dry_run = request.POST.get("dry_run") == "1"
    try:
        if job.status in (ImportStatus.DONE, ImportStatus.FAILED, ImportStatus.UNDONE):
            job = import_job_again(job=job, by=request.user)
            if request.POST.get("remap") == "1":
                return redirect("import-map", pk=job.pk)
        job = import_job_start(job=job, by=request.user, dry_run=dry_run)
    except (MappingError, DraftError) as exc:
        messages.error(request, str(exc))
        return redirect("import-detail", pk=pk)
    return redirect("import-detail", pk=job.pk)


@login_required
@require_POST
def import_resume(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Go on with a failed import after its last committed chunk."""
    job = _job(request, pk)
    try:
        import_job_resume_request(job=job, by=request.user)
    except DraftError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The import goes on from the last rows it stored.")
    return redirect("import-detail", pk=job.pk)


@login_required
@require_POST
def import_undo(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk)
    try:
        import_job_undo_request(job=job, by=request.user)
    except UndoError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            "Undo queued: what the import created is removed and what it changed restored, "
            "except where it changed since.",
        )
    return redirect("import-detail", pk=job.pk)


@login_required
@require_GET
def import_errors(request: AuthenticatedHttpRequest, pk: int) -> StreamingHttpResponse:
    """The failed rows, each with its row number and reason, to fix and import again."""
    job = _job(request, pk)
    response = StreamingHttpResponse(
        import_error_rows(job=job), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response
