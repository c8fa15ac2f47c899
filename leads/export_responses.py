"""The HTTP answer that carries an export, the same for the leads list, the REST API and
the admin: CSV streamed as it is written, XLSX written to a temporary file first (a
workbook is a zip archive, finished only at its end) and then streamed from it; and
the download of a file an export job wrote (``leads.export_jobs``), streamed from it.

Neither holds the rows in memory (``leads.exports``). The files hold people's contact
details: they are attachments that no cache keeps.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from django.db.models import QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import content_disposition_header

from .exports import ExportColumn, csv_chunks, leads_export_rows, xlsx_write
from .models import Lead

CSV = "csv"
XLSX = "xlsx"
EXPORT_FORMATS = (CSV, XLSX)
CONTENT_TYPES = {
    CSV: "text/csv; charset=utf-8",
    XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FORMAT_UNKNOWN = "Export as csv or xlsx."


def export_filename(file_format: str, *, stem: str = "leads") -> str:
    """``leads-2025-03-01-0930.csv``: what and when, in the site's time zone."""
    return f"{stem}-{timezone.localtime():%Y-%m-%d-%H%M}.{file_format}"


def leads_export_response(
    *, leads: QuerySet[Lead], columns: Sequence[ExportColumn], file_format: str
) -> HttpResponseBase:
    """The file of ``leads`` (as the caller shows them: visible, filtered, ordered) in
    ``file_format`` (one of ``EXPORT_FORMATS``), as a download."""
    header = [column.name for column in columns]
    rows = leads_export_rows(leads=leads, columns=columns)
    filename = export_filename(file_format)
    response: HttpResponseBase
    if file_format == CSV:
        response = StreamingHttpResponse(
            csv_chunks(header=header, rows=rows), content_type=CONTENT_TYPES[CSV]
        )
        response["Content-Disposition"] = content_disposition_header(True, filename)
    elif file_format == XLSX:
        # Deleted by the system when closed, once FileResponse has sent it.
        file = tempfile.TemporaryFile()  # noqa: SIM115  # FileResponse closes it
        try:
            xlsx_write(header=header, rows=rows, file=file)
            file.seek(0)
        except BaseException:
            file.close()
            raise
        response = FileResponse(
            file, as_attachment=True, filename=filename, content_type=CONTENT_TYPES[XLSX]
        )
    else:
        raise ValueError(FORMAT_UNKNOWN)
    add_never_cache_headers(response)
    return response


def export_job_file_response(*, path: Path, filename: str, file_format: str) -> FileResponse:
    """The file an export job wrote, as a download. Raises ``FileNotFoundError`` when
    it is gone."""
    response = FileResponse(
        open(path, "rb"),  # noqa: SIM115  # FileResponse closes it
        as_attachment=True,
        filename=filename,
        content_type=CONTENT_TYPES[file_format],
    )
    add_never_cache_headers(response)
    return response
