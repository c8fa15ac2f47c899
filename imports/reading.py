"""Reading the files people import: CSV as spreadsheets and old CRMs write it, and XLSX.

A file is read as a stream of rows, never whole: a million-row CSV is one open text file
under ``csv.reader`` (which keeps quoted newlines inside their cell), and an XLSX sheet
is read by openpyxl in read-only mode, row by row. The first non-empty row is the
header. What varies between exports is detected and can be overridden:

- the encoding: a byte-order mark (UTF-8 or UTF-16), else UTF-8 when a sample decodes
  as UTF-8, else Windows-1252 (Excel's "CSV" on Western Windows), else Latin-1;
- the delimiter and quoting: ``csv.Sniffer`` on a sample among ``,`` ``;`` tab ``|``,
  falling back to the delimiter the header row holds most of.

Headers are made usable: blanks around them dropped, an empty one named "Column 3",
a repeated one "Email (2)", trailing empty columns dropped. Rows with no value at all
are skipped; the others keep their row number in the file (the header is row 1, as a
spreadsheet counts), which the error file and a resumed import rely on.

Anything that is not a readable CSV or XLSX, or is larger than the settings allow,
raises ``ImportFileError`` with a message meant for the person who chose the file.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

DELIMITERS = ",;\t|"
SAMPLE_BYTES = 64 * 1024
# The first bytes of formats people pick by mistake, named in the error.
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
# csv's own limit (128 KiB) refuses long notes fields; a cell is still bounded.
csv.field_size_limit(16 * 1024 * 1024)


class ImportFileError(Exception):
    """The file cannot be imported; ``str()`` says why, in words for the uploader."""


@dataclass(frozen=True)
class ReadOptions:
    """What to force instead of detecting: an encoding, a delimiter, a sheet's name."""

    encoding: str = ""
    delimiter: str = ""
    sheet: str = ""


@dataclass
class Row:
    """One row of data: its number in the file and a value per header (same order)."""

    number: int
    values: list[Any]
    # Non-empty cells beyond the last header: the row does not fit the columns.
    overflow: int = 0

    def as_dict(self, headers: list[str]) -> dict[str, Any]:
        return dict(zip(headers, self.values, strict=True))


@dataclass
class Table:
    """An open file: what was detected, the headers, and its rows as a stream."""

    format: str
    headers: list[str]
    encoding: str = ""
    delimiter: str = ""
    _rows: Iterator[Row] = field(default_factory=lambda: iter(()))
    _close: Any = None
    # One item for each row ``rows`` would give, found more cheaply (CSV), for counting.
    _filled: Iterator[object] | None = None

    def rows(self) -> Iterator[Row]:
        return self._rows

    def filled(self) -> Iterator[object]:
        """An item for each row of data (read from the same stream as ``rows``)."""
        return self._rows if self._filled is None else self._filled

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_table(path: str | Path, *, options: ReadOptions | None = None) -> Table:
    """Open a CSV or XLSX file and read its header; raises ``ImportFileError``.

    Close the table (or use it as a context manager) when done with its rows.
    """
    options = options or ReadOptions()
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImportFileError("The file cannot be read.") from exc
    limit = settings.IMPORT_MAX_FILE_BYTES
    if size > limit:
        raise ImportFileError(
            f"The file is {_megabytes(size)}; files up to {_megabytes(limit)} can be imported."
        )
    if size == 0:
        raise ImportFileError("The file is empty.")
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    if head.startswith(ZIP_MAGIC):
        return _open_xlsx(path, options)
    if head.startswith(OLE2_MAGIC):
        raise ImportFileError(
            "This is an Excel 97-2003 (.xls) file; save it as .xlsx or CSV and import that."
        )
    return _open_csv(path, head, options)


def count_rows(table: Table) -> int:
    """How many data rows the table has, read to the end (refusing files over the limit)."""
    limit = settings.IMPORT_MAX_ROWS
    count = 0
    for _ in table.filled():
        count += 1
        if count > limit:
            raise ImportFileError(f"The file has more than {limit:,} rows; split it.")
    return count


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MB"


# --- CSV ---------------------------------------------------------------------


def _open_csv(path: Path, head: bytes, options: ReadOptions) -> Table:
    encoding = options.encoding or detect_encoding(head)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ImportFileError(f"“{encoding}” is not an encoding this server knows.") from None
    sample = _decoded_sample(head, encoding)
    if "\x00" in sample:
        raise ImportFileError("This is not a CSV or XLSX file (it holds binary data).")
    delimiter = options.delimiter or detect_delimiter(sample)
    if len(delimiter) != 1:
        raise ImportFileError("The delimiter must be one character, such as , or ;.")
    handle = path.open(encoding=encoding, newline="", errors="strict")
    try:
        dialect = _dialect(sample, delimiter)
        records = _numbered(csv.reader(handle, dialect), encoding)
        headers, width = _header(records)
    except BaseException:
        handle.close()
        raise
    rows = _rows(records, width)
    return Table("csv", headers, encoding, delimiter, rows, handle.close, _csv_filled(records))


def detect_encoding(head: bytes) -> str:
    """The encoding of a file starting with ``head``: a BOM's, else UTF-8 if the bytes
    decode as it (a character cut at the end of the sample allowed), else cp1252, else
    Latin-1 (which decodes anything)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "cp1252"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=False)
        except UnicodeDecodeError:
            continue
        return encoding
    return "latin-1"


def _decoded_sample(head: bytes, encoding: str) -> str:
    try:
        text = codecs.getincrementaldecoder(encoding)(errors="strict").decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"The file is not valid {encoding} (byte {exc.start + 1}); choose its encoding."
        ) from None
    # A sample cut in the middle of a row would mislead the sniffer: keep whole lines.
    if len(head) == SAMPLE_BYTES and "\n" in text:
        text = text[: text.rindex("\n") + 1]
    return text.lstrip("\ufeff")


def detect_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample: ``csv.Sniffer``'s guess among , ; tab |, or the one
    the header line holds most of (a file of one column: a comma)."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        pass
    first = sample.split("\n", 1)[0]
    counts = {d: _unquoted_count(first, d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _unquoted_count(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            count += 1
    return count


def _dialect(sample: str, delimiter: str) -> type[csv.Dialect]:
    """The sniffed quoting with the chosen delimiter (Excel's when sniffing fails)."""
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=delimiter)
    except csv.Error:
        sniffed = csv.excel

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter
    Dialect.quotechar = sniffed.quotechar or '"'
    Dialect.doublequote = sniffed.doublequote
    Dialect.escapechar = sniffed.escapechar
    Dialect.skipinitialspace = sniffed.skipinitialspace
    Dialect.strict = False
    return Dialect


def _csv_filled(records: Iterator[tuple[int, list[str]]]) -> Iterator[int]:
    """The numbers of the records ``_rows`` gives as rows: those with a cell that is not
    blank (a CSV's cells are all text, so joined they hold more than whitespace)."""
    return (number for number, record in records if "".join(record).strip())


def _numbered(reader: Any, encoding: str) -> Iterator[tuple[int, list[Any]]]:
    """The reader's records numbered from 1, with a decoding error said in words."""
    number = 0
    try:
        for record in reader:
            number += 1
            yield number, record
    except UnicodeDecodeError:
        raise ImportFileError(
            f"Row {number + 1} is not valid {encoding}; choose the file's encoding "
            "(cp1252 or latin-1 for most Western exports)."
        ) from None
    except csv.Error as exc:
        raise ImportFileError(f"Row {number + 1} cannot be read as CSV: {exc}.") from None


# --- XLSX --------------------------------------------------------------------


def _open_xlsx(path: Path, options: ReadOptions) -> Table:
    _check_zip(path)
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportFileError(f"The XLSX file cannot be opened: {exc}.") from None
    try:
        if options.sheet:
            if options.sheet not in workbook.sheetnames:
                names = ", ".join(workbook.sheetnames)
                raise ImportFileError(f"No sheet “{options.sheet}”; the sheets are {names}.")
            sheet = workbook[options.sheet]
        else:
            sheet = workbook.worksheets[0]
        records = _xlsx_records(sheet.iter_rows(values_only=True))
        headers, width = _header(records)
    except BaseException:
        workbook.close()
        raise
    return Table("xlsx", headers, "", "", _rows(records, width), workbook.close)


def _check_zip(path: Path) -> None:
    """Refuse a ZIP that is no workbook, or that would unpack beyond the limits (a zip
    bomb), from its directory alone, before anything is decompressed."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise ImportFileError("The file looks like XLSX but is not a valid ZIP archive.") from None
    names = {member.filename for member in members}
    if "xl/workbook.xml" not in names:
        raise ImportFileError("This ZIP archive is not an XLSX workbook.")
    total = sum(member.file_size for member in members)
    limit = settings.IMPORT_MAX_XLSX_UNPACKED_BYTES
    if total > limit:
        raise ImportFileError(
            f"The workbook unpacks to {_megabytes(total)}, over the {_megabytes(limit)} "
            "allowed; save it as CSV, or split it."
        )
    ratio = settings.IMPORT_MAX_XLSX_RATIO
    for member in members:
        if member.file_size > 1024 * 1024 and member.file_size > ratio * max(
            member.compress_size, 1
        ):
            raise ImportFileError(
                f"The workbook's part {member.filename} is compressed more than {ratio}:1, "
                "as no spreadsheet is; it is not imported."
            )


def _xlsx_records(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[int, list[Any]]]:
    for number, values in enumerate(rows, start=1):
        yield number, [_xlsx_value(value) for value in values]


def _xlsx_value(value: Any) -> Any:
    """Cells as the cleaners take them: text stripped, whole floats as integers."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dt.time):
        return value.isoformat()
    return value


# --- Both --------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _header(records: Iterator[tuple[int, list[Any]]]) -> tuple[list[str], int]:
    """Read up to the first non-empty record and make its cells usable headers; the
    headers and how many columns the rows have."""
    for _, record in records:
        if all(_blank(cell) for cell in record):
            continue
        cells = ["" if _blank(c) else str(c).strip().lstrip("\ufeff").strip() for c in record]
        while cells and not cells[-1]:
            cells.pop()
        return unique_headers(cells), len(cells)
    raise ImportFileError("The file has no header row (it holds no values).")


def unique_headers(cells: list[str]) -> list[str]:
    """Headers that name each column once: "Column 3" for an empty one, "Email (2)" for
    the second "Email"."""
    named = [cell or f"Column {index}" for index, cell in enumerate(cells, start=1)]
    seen: dict[str, int] = {}
    taken = {name.casefold() for name in named}
    headers = []
    for name in named:
        key = name.casefold()
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 1:
            headers.append(name)
            continue
        suffix = seen[key]
        while f"{name} ({suffix})".casefold() in taken:
            suffix += 1
        unique = f"{name} ({suffix})"
        taken.add(unique.casefold())
        headers.append(unique)
    return headers


def _rows(records: Iterator[tuple[int, list[Any]]], width: int) -> Iterator[Row]:
    for number, record in records:
        # ``_blank`` written out: this runs for every cell of every row.
        values = [
            None if c is None or (isinstance(c, str) and (not c or c.isspace())) else c
            for c in record[:width]
        ]
        values += [None] * (width - len(values))
        overflow = (
            sum(1 for cell in record[width:] if not _blank(cell)) if len(record) > width else 0
        )
        if overflow or any(value is not None for value in values):
            yield Row(number, values, overflow)
