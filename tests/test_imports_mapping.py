"""Cells cleaned into stored values, mappings suggested from header names, and a row's
errors said per cell."""

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from imports.mapping import (
    MappingError,
    Options,
    Remembered,
    RowCleaner,
    parse_pairs,
    suggest_mapping,
)
from imports.normalize import (
    CellError,
    ChoiceReader,
    clean_bool,
    clean_choice,
    clean_country,
    clean_datetime,
    clean_decimal,
    clean_email,
    clean_name,
    clean_phone,
    email_valid,
)
from leads.models import ActivityType, Authority, Industry, Seniority, Stage, Timeline


@pytest.mark.parametrize(
    ("text", "decimal_comma", "expected"),
    [
        ("1,234.50", False, "1234.50"),
        ("1.234,50", False, "1234.50"),
        ("1 234,5", False, "1234.5"),
        ("€ 1.200", True, "1200"),
        ("1,200", False, "1200"),
        ("1,200", True, "1.200"),
        ("12,5", False, "12.5"),
        ("$1,234,567.89", False, "1234567.89"),
        ("(300)", False, "-300"),
        ("1'000", False, "1000"),
    ],
)
def test_numbers_with_thousands_separators_and_decimal_commas(text, decimal_comma, expected):
    assert clean_decimal(text, decimal_comma=decimal_comma) == Decimal(expected)


def test_a_word_is_not_a_number():
    with pytest.raises(CellError, match="not a number"):
        clean_decimal("about twelve")


def test_dates_in_common_formats_in_the_files_time_zone():
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    expected = dt.datetime(2024, 3, 4, 0, 0, tzinfo=berlin)
    for text in ("2024-03-04", "04.03.2024", "04/03/2024", "4 Mar 2024", "March 4, 2024"):
        assert clean_datetime(text, time_zone="Europe/Berlin") == expected, text
    assert clean_datetime("03/04/2024", time_zone="Europe/Berlin", day_first=False) == expected
    assert clean_datetime("2024-03-04T10:00:00Z", time_zone="Europe/Berlin") == dt.datetime(
        2024, 3, 4, 10, tzinfo=dt.UTC
    )
    assert clean_datetime("31/12/2024 14:30", time_zone="UTC").hour == 14
    with pytest.raises(CellError, match="not a date"):
        clean_datetime("soon", time_zone="UTC")


def test_emails_names_phones_countries_and_booleans():
    assert clean_email("  Anna.Muller@Example.DE ") == "anna.muller@example.de"
    assert clean_email("Anna <anna@example.de>") == "anna@example.de"
    with pytest.raises(CellError):
        clean_email("anna at example")
    assert clean_name("JOHN O'NEIL") == "John O'Neil"
    assert clean_name("McDonald") == "McDonald"
    assert clean_phone("030 1234567", region="DE") == "+49301234567"
    assert clean_phone("+1 (415) 555-2671", region="DE") == "+14155552671"
    with pytest.raises(CellError, match="valid phone number"):
        clean_phone("12", region="DE")
    assert [clean_country(c) for c in ("Germany", "deutschland", "USA", "uk", "fr")] == [
        "DE",
        "DE",
        "US",
        "GB",
        "FR",
    ]
    with pytest.raises(CellError, match="ISO code"):
        clean_country("Atlantis")
    assert [clean_bool(v) for v in ("Yes", "n", "TRUE", "0", "ja")] == [
        True,
        False,
        True,
        False,
        True,
    ]


@pytest.mark.django_db
def test_suggestions_from_header_names():
    headers = ["E-mail", "First Name", "Surname", "Company Name", "Mobile", "Website", "Notes"]

    assert suggest_mapping("leads", headers) == {
        "E-mail": "email",
        "First Name": "first_name",
        "Surname": "last_name",
        "Company Name": "company",
        "Mobile": "phone",
        "Website": "company_domain",
    }
    assert suggest_mapping("deals", ["Email Address", "Deal Name", "Close Date", "Amount"]) == {
        "Email Address": "email",
        "Deal Name": "name",
        "Close Date": "closed_at",
        "Amount": "amount",
    }


@pytest.mark.django_db
def test_a_row_is_cleaned_with_constants_value_maps_and_per_cell_errors():
    cleaner = RowCleaner(
        kind="leads",
        headers=["Email", "Stage", "Country", "Phone", "Seniority"],
        mapping={
            "Email": "email",
            "Stage": "stage",
            "Country": "country",
            "Phone": "phone",
            "Seniority": "seniority",
        },
        constants={"source": "event", "campaign": "Expo 2024"},
        value_maps={"stage": {"Hot prospect": "sql"}},
        options=Options(time_zone="UTC"),
    )

    values, errors = cleaner.clean(
        {
            "Email": "A@X.example",
            "Stage": "hot PROSPECT",
            "Country": "Germany",
            "Phone": "0301234567",
            "Seniority": "Select",
        }
    )
    assert errors == {}
    assert values == {
        "email": "a@x.example",
        "stage": "sql",
        "country": "DE",
        "phone": "+49301234567",
        "source": "event",
        "campaign": "Expo 2024",
    }

    values, errors = cleaner.clean(
        {"Email": "nope", "Stage": "N/A", "Country": "Mars", "Phone": "", "Seniority": "King"}
    )
    assert set(errors) == {"Email", "Country", "Seniority"}
    assert "C-level" in errors["Seniority"]


@pytest.mark.django_db
def test_a_mapping_that_does_not_fit_says_every_reason():
    with pytest.raises(MappingError) as caught:
        RowCleaner(
            kind="leads",
            headers=["Mail", "Name"],
            mapping={"Name": "first_name", "Missing": "last_name", "Mail": "shoe_size"},
            constants={"source": "carrier pigeon"},
        )
    assert caught.value.messages == [
        "The file has no column “Missing”.",
        "“shoe_size” is not a field of a leads import.",
        "Map a column to email.",
    ]
    with pytest.raises(MappingError, match="constant for source"):
        RowCleaner(
            kind="leads",
            headers=["Mail"],
            mapping={"Mail": "email"},
            constants={"source": "carrier pigeon"},
        )
    assert parse_pairs("Email=email, Company Name=company") == {
        "Email": "email",
        "Company Name": "company",
    }


CHOICE_WORDS = [
    "C-Level", "c level", "c_level", "VP", "vp", " Director ", "MANAGER", "Individual contributor",
    "individual", "Student", "Unknown", "!!!", "Pope", "", "Financial services", "finance",
    "Within 3 months", "quarter", "Later or never", "Decision maker", "Page View", "page_view",
    "PAGE VIEW", "Trial sign-up", "trial signup", "Email bounce", "Zoë", "Ré-sumé",
]  # fmt: skip


def _answer(read, word: str) -> tuple[str, str]:
    try:
        return ("value", read(word))
    except CellError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("choices", [Seniority, Industry, Timeline, Authority, ActivityType, Stage])
def test_a_choice_read_with_its_keys_worked_out_once_reads_as_clean_choice_does(choices):
    read = ChoiceReader(choices.choices)
    for _ in range(2):  # the second time from what it remembered
        for word in CHOICE_WORDS:
            expected = _answer(lambda w: clean_choice(w, choices=choices.choices), word)
            assert _answer(read, word) == expected


ADDRESSES = [
    "anna.mueller@acme.example", "a+tag@acme.example", "o'neil@acme.example",
    "first.last123@sub.domain.example", "x@localhost", "x@[192.168.0.1]", "x@[ipv6:::1]",
    '"quoted name"@acme.example', '"a\\"b"@acme.example', "ünïcode@acme.example",
    "user@ünïcode.example", "a..b@acme.example", ".a@acme.example", "a.@acme.example",
    "a@acme", "a@-acme.example", "a@acme.example.", "a@acme..example", "@acme.example", "a@",
    "no-at-sign", "", "a b@acme.example", "a@acme.example\n", "\u017f@acme.example",
    "x" * 65 + "@acme.example", "a@" + "d" * 64 + ".example", "a@" + "d.example" * 40,
]  # fmt: skip


@pytest.mark.parametrize("address", ADDRESSES)
def test_an_address_is_valid_exactly_when_djangos_validator_says_so(address):
    try:
        validate_email(address)
    except ValidationError:
        django_says = False
    else:
        django_says = True
    assert email_valid(address) is django_says
    assert email_valid(address) is django_says  # and again, its domain's verdict remembered


@pytest.mark.django_db
def test_value_maps_turn_placeholders_into_values_and_words_into_nothing():
    cleaner = RowCleaner(
        kind="leads",
        headers=["Email", "Budget", "Stage", "Source"],
        mapping={"Email": "email", "Budget": "budget", "Stage": "stage", "Source": "source"},
        constants={"source": "event"},
        value_maps={"budget": {"-": "No budget"}, "stage": {"Pick one": ""}, "source": {"?": ""}},
    )

    def clean(budget, stage, source):
        return cleaner.clean(
            {"Email": "a@x.example", "Budget": budget, "Stage": stage, "Source": source}
        )

    # A placeholder the map names becomes its value; one it does not name stays empty
    assert clean("-", None, None)[0] == {
        "email": "a@x.example",
        "budget": "none",
        "source": "event",
    }
    assert clean("N/A", "MQL", "Referral")[0] == {
        "email": "a@x.example",
        "stage": "mql",
        "source": "referral",
    }
    # A word mapped to nothing is no value, and the constant fills in where there is one
    assert clean(None, "pick ONE", "?") == ({"email": "a@x.example", "source": "event"}, {})


@pytest.mark.parametrize(
    ("cell", "domain"),
    [
        ("Acme.example", "acme.example"),
        ("https://www.acme.example/about", "acme.example"),
        ("www.acme.example", "acme.example"),
        ("//shop.acme.example:8080/x", "shop.acme.example"),
        ("http://[broken", None),
        ("not a domain", None),
        ("localhost", None),
    ],
)
@pytest.mark.django_db
def test_a_website_becomes_its_domain_and_anything_else_fails_its_cell(cell, domain):
    cleaner = RowCleaner(
        kind="leads",
        headers=["Email", "Website"],
        mapping={"Email": "email", "Website": "company_domain"},
    )
    for _ in range(2):  # the second time from what the cleaner remembered
        values, errors = cleaner.clean({"Email": "a@x.example", "Website": cell})
        if domain is None:
            assert errors == {"Website": f"“{cell}” is not a domain."}
        else:
            assert (values["company_domain"], errors) == (domain, {})


def test_a_cells_answer_is_remembered_by_its_text_errors_too():
    # Given a cleaner that counts its calls and refuses "bad"
    calls = []

    def clean(value, options, row):
        calls.append(value)
        if value == "bad":
            raise CellError("“bad” is not a value.")
        return value.upper()

    remembered = Remembered(clean)

    # When a column of two words and a bad one is cleaned over and over
    answers = [remembered(word, Options(), {}) for word in ["a", "b"] * 50]
    for _ in range(3):
        with pytest.raises(CellError, match="“bad” is not a value"):
            remembered("bad", Options(), {})

    # Then each text was cleaned once, and answered the same every time
    assert answers == ["A", "B"] * 50
    assert calls == ["a", "b", "bad"]


def test_a_column_of_mostly_new_cells_stops_being_remembered(monkeypatch):
    monkeypatch.setattr(Remembered, "TRIAL", 100)
    remembered = Remembered(lambda value, options, row: value)

    for number in range(150):
        assert remembered(f"cell {number}", Options(), {}) == f"cell {number}"

    assert remembered.seen is None
