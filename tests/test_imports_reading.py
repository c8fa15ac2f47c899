"""Reading the files people import: messy CSVs as spreadsheets and old CRMs write them,
XLSX with dates, and files that are not importable at all, answered in words."""

import codecs
import datetime as dt
import io
import zipfile

import openpyxl
import pytest

from imports.reading import ImportFileError, ReadOptions, count_rows, open_table

# XLSX cells hold naive datetimes: the file's time zone is applied when a row is cleaned.
SIGNED_UP = dt.datetime(2024, 3, 1, 9, 30)  # noqa: DTZ001
CHRISTMAS_EVE = dt.datetime(2023, 12, 24)  # noqa: DTZ001


def read(path, **options):
    with open_table(path, options=ReadOptions(**options)) as table:
        return table, [(row.number, row.values, row.overflow) for row in table.rows()]


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_semicolons_with_a_bom_quoted_newlines_and_trailing_empty_columns(tmp_path):
    # Given Excel's "CSV UTF-8" of a German office: a BOM, semicolons, a note spanning
    # two lines, a trailing semicolon on every line and an empty line in between
    text = (
        "E-Mail;Name;Notiz;;\r\n"
        'anna@example.de;Anna Müller;"erste Zeile\r\nzweite Zeile";;\r\n'
        ";;;;\r\n"
        "bernd@example.de;Bernd;;;\r\n"
    )
    path = write(tmp_path, "leads.csv", codecs.BOM_UTF8 + text.encode("utf-8"))

    table, rows = read(path)

    assert (table.format, table.encoding, table.delimiter) == ("csv", "utf-8-sig", ";")
    assert table.headers == ["E-Mail", "Name", "Notiz"]
    assert rows == [
        (2, ["anna@example.de", "Anna Müller", "erste Zeile\r\nzweite Zeile"], 0),
        (4, ["bernd@example.de", "Bernd", None], 0),
    ]


def test_latin1_is_detected_and_an_encoding_can_be_forced(tmp_path):
    path = write(tmp_path, "old.csv", "email,city\nzoe@example.fr,Besançon\n".encode("cp1252"))

    table, rows = read(path)
    assert table.encoding == "cp1252"
    assert rows[0][1] == ["zoe@example.fr", "Besançon"]

    # Forced to UTF-8, the same bytes are refused with the row and a hint
    with pytest.raises(ImportFileError, match="not valid utf-8"):
        read(path, encoding="utf-8")


def test_duplicate_and_empty_headers_are_made_unique(tmp_path):
    path = write(
        tmp_path, "dupes.csv", b"Email,,email,Phone,Email\na@x.example,1,b@x.example,2,c\n"
    )

    table, _ = read(path)

    assert table.headers == ["Email", "Column 2", "email (2)", "Phone", "Email (3)"]


def test_tabs_and_pipes_are_sniffed_and_a_delimiter_can_be_forced(tmp_path):
    tabs = write(tmp_path, "t.tsv", b"email\tcompany\na@x.example\tAcme, Inc.\n")
    pipes = write(tmp_path, "p.csv", b"email|company\na@x.example|Acme; Inc.\n")

    assert read(tabs)[0].delimiter == "\t"
    assert read(pipes)[1][0][1] == ["a@x.example", "Acme; Inc."]
    forced, rows = read(tabs, delimiter=",")
    assert forced.headers == ["email\tcompany"]
    assert rows == [(2, ["a@x.example\tAcme"], 1)]


def test_a_row_wider_than_the_header_is_flagged(tmp_path):
    path = write(tmp_path, "wide.csv", b"email,name\na@x.example,Ann,surprise\nb@x.example,Bo,\n")

    _, rows = read(path)

    assert [(number, overflow) for number, _, overflow in rows] == [(2, 1), (3, 0)]


def test_xlsx_rows_stream_with_dates_as_datetimes(tmp_path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Email", "Signed up", "Employees", "Phone"])
    sheet.append(["a@x.example", SIGNED_UP, 250, 4930123456])
    sheet.append([None, None, None, None])
    sheet.append(["b@x.example", dt.date(2023, 12, 24), None, None])
    path = tmp_path / "leads.xlsx"
    workbook.save(path)

    table, rows = read(path)

    assert table.format == "xlsx"
    assert table.headers == ["Email", "Signed up", "Employees", "Phone"]
    assert rows[0] == (2, ["a@x.example", SIGNED_UP, 250, 4930123456], 0)
    assert rows[1][0] == 4
    assert rows[1][1][1] == CHRISTMAS_EVE


def test_binary_garbage_is_not_a_csv(tmp_path):
    path = write(tmp_path, "photo.csv", bytes(range(256)) * 10)

    with pytest.raises(ImportFileError, match="not a CSV or XLSX"):
        read(path)


def test_an_old_excel_file_is_named_as_such(tmp_path):
    path = write(tmp_path, "old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)

    with pytest.raises(ImportFileError, match=r"97-2003 \(.xls\)"):
        read(path)


def test_a_zip_that_is_no_workbook_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    path = write(tmp_path, "archive.xlsx", buffer.getvalue())

    with pytest.raises(ImportFileError, match="not an XLSX workbook"):
        read(path)


def test_a_zip_bomb_workbook_is_refused_before_it_is_unpacked(tmp_path, settings):
    # Given a "workbook" whose sheet is 50 MB of zeros compressed to a few dozen KB
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"0" * (50 * 1024 * 1024))
    path = write(tmp_path, "bomb.xlsx", buffer.getvalue())

    # Then the ratio alone refuses it, and so does the unpacked size under a lower limit
    with pytest.raises(ImportFileError, match="compressed more than 100:1"):
        read(path)
    settings.IMPORT_MAX_XLSX_UNPACKED_BYTES = 10 * 1024 * 1024
    with pytest.raises(ImportFileError, match=r"unpacks to 50\.0 MB"):
        read(path)


def test_files_over_the_size_or_row_limit_are_refused(tmp_path, settings):
    path = write(tmp_path, "big.csv", b"email\n" + b"a@x.example\n" * 100)

    settings.IMPORT_MAX_FILE_BYTES = 500
    with pytest.raises(ImportFileError, match=r"files up to 0\.0 MB"):
        read(path)
    settings.IMPORT_MAX_FILE_BYTES = 10_000
    settings.IMPORT_MAX_ROWS = 99
    with open_table(path) as table, pytest.raises(ImportFileError, match="more than 99 rows"):
        count_rows(table)


def test_an_empty_file_and_a_file_of_blank_lines_are_refused(tmp_path):
    with pytest.raises(ImportFileError, match="empty"):
        read(write(tmp_path, "empty.csv", b""))
    with pytest.raises(ImportFileError, match="no header row"):
        read(write(tmp_path, "blank.csv", b"\n ,, \n\n"))


def test_the_rows_counted_are_the_rows_read(tmp_path):
    # Given a CSV with empty lines, lines of blanks (no-break spaces, tabs), a quoted
    # blank, a row whose only value is past the last column, and ordinary rows
    text = (
        'email,name\na@x.example,Anna\n\n , \t\n"\u00a0",""\n,,,extra\n,Bernd\n,, ,\nc@x.example,\n'
    )
    path = write(tmp_path, "rows.csv", text.encode("utf-8"))

    # When it is counted and read
    with open_table(path) as table:
        counted = count_rows(table)
    _, rows = read(path)

    # Then the count is the rows read: the blank lines are neither
    assert counted == len(rows) == 4
