"""Cleaning one imported cell into the value Hotlist stores, or saying why it cannot be.

Each cleaner takes what the file holds (text, or a number or datetime from XLSX) and
returns the stored value, ``None`` for "no value", or raises ``CellError`` with a
message for the error file. Placeholders that forms and old CRMs write for "nothing"
("Select", "N/A", "-", "none") are no value, whatever the field.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers
from django.core.validators import validate_email

from leads.duplicates import phone_key_is_itself
from leads.models import normalize_email


class CellError(ValueError):
    """A cell that cannot be stored; ``str()`` says why."""


PLACEHOLDERS = frozenset(
    {
        "",
        "-",
        "--",
        "---",
        "?",
        ".",
        "n/a",
        "na",
        "n.a.",
        "#n/a",
        "none",
        "null",
        "nil",
        "(none)",
        "(blank)",
        "select",
        "select...",
        "select one",
        "please select",
        "-- select --",
        "--select--",
        "not provided",
        "not specified",
    }
)


def text_of(value: Any) -> str:
    """A cell as text: whitespace (no-break spaces too) around it dropped."""
    if type(value) is str:  # a CSV's every cell: the shortest way
        return value.replace("\u00a0", " ").strip() if "\u00a0" in value else value.strip()
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).replace("\u00a0", " ").strip()


_LONGEST_PLACEHOLDER = max(map(len, PLACEHOLDERS))


def is_placeholder(value: Any) -> bool:
    if value is None:
        return True
    # Text longer than any placeholder with nothing to strip around it is none: the
    # commonest cell (an email, a date) answered without trimming and folding it.
    if (
        type(value) is str
        and len(value) > _LONGEST_PLACEHOLDER
        and not value[0].isspace()
        and not value[-1].isspace()
    ):
        return False
    return text_of(value).casefold() in PLACEHOLDERS


def clean_text(value: Any, *, max_length: int) -> str:
    text = " ".join(text_of(value).split())
    if len(text) > max_length:
        raise CellError(f"Longer than {max_length} characters.")
    return text


def clean_email(value: Any) -> str:
    """Trimmed and lower-cased, ``Name <a@b.example>`` and ``mailto:`` unwrapped."""
    text = text_of(value)
    if "<" in text:
        match = re.search(r"<([^<>]+)>", text)
        if match:
            text = match.group(1)
    email = normalize_email(text.removeprefix("mailto:"))
    if not email_valid(email):
        raise CellError(f"“{text}” is not an email address.")
    if len(email) > 254:
        raise CellError("Longer than 254 characters.")
    return email


# The commonest local part (dot-separated atoms, already lower-cased), which Django's
# validator accepts too; others go through its own expression, which spends several
# microseconds on every address matching case-insensitively.
_PLAIN_LOCAL_PART = re.compile(r"[-!#$%&'*+/=?^_`{}|~0-9a-z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*")
# Domains the rows of a file share, checked once each.
_DOMAIN_VERDICTS: dict[str, bool] = {}
_DOMAINS_REMEMBERED = 100_000


def email_valid(email: str) -> bool:
    """What ``django.core.validators.validate_email`` says of an address, answered
    faster for the addresses of a large file: a plain local part is matched by a
    simpler expression, and each domain's verdict is remembered."""
    if not email or "@" not in email or len(email) > 320:
        return False
    local, domain = email.rsplit("@", 1)
    if not _PLAIN_LOCAL_PART.fullmatch(local) and not validate_email.user_regex.match(local):
        return False
    verdict = _DOMAIN_VERDICTS.get(domain)
    if verdict is None:
        verdict = domain in validate_email.domain_allowlist or bool(
            validate_email.validate_domain_part(domain)
        )
        if len(_DOMAIN_VERDICTS) < _DOMAINS_REMEMBERED:
            _DOMAIN_VERDICTS[domain] = verdict
    return verdict


def clean_name(value: Any, *, max_length: int = 100) -> str:
    """Title-cased only when written in capitals ("JOHN O'NEIL" → "John O'Neil"); a name
    written in mixed case ("McDonald", "van der Berg") is kept as it is."""
    text = clean_text(value, max_length=max_length)
    if text.isupper():
        return text.title()
    return text


def clean_phone(value: Any, *, region: str) -> str:
    """E.164 ("+4930123456"), read in ``region`` when written without a country code."""
    text = text_of(value)
    try:
        number = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException:
        raise CellError(f"“{text}” is not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        where = f" in {region}" if region else ""
        raise CellError(f"“{text}” is not a valid phone number{where}.")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # The lead's duplicate key is this number again: parsed once, here.
    phone_key_is_itself(e164)
    return e164


TRUE_WORDS = frozenset({"yes", "y", "true", "t", "1", "x", "ja", "j", "oui", "si", "sí", "✓"})
FALSE_WORDS = frozenset({"no", "n", "false", "f", "0", "nein", "non"})


def clean_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = text_of(value).casefold()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise CellError(f"“{text_of(value)}” is neither yes nor no.")


CURRENCY_MARKS = re.compile(r"[€$£¥₹]|\b(?:EUR|USD|GBP|CHF|JPY)\b", re.IGNORECASE)


def clean_decimal(value: Any, *, decimal_comma: bool = False) -> Decimal:
    """A number as spreadsheets and people write it: "1,234.50", "1.234,50", "1 234,5",
    "€ 1.200". A lone comma or point followed by exactly three digits is a thousands
    separator only when ``decimal_comma`` says the file writes decimals with a comma
    (a lone comma is otherwise a thousands separator, a lone point a decimal one)."""
    if isinstance(value, bool):
        raise CellError("Not a number.")
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    original = text_of(value)
    if original.isascii() and original.isdigit():
        return Decimal(original)  # the commonest number, a plain one, the shortest way
    text = CURRENCY_MARKS.sub("", original)
    text = re.sub(r"[\s'\u202f]", "", text)
    negative = text.startswith("(") and text.endswith(")")
    text = text.strip("()")
    text = _decimal_point(text, decimal_comma)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise CellError(f"“{original}” is not a number.") from None
    if not number.is_finite():
        raise CellError(f"“{original}” is not a number.")
    return -number if negative else number


def _decimal_point(text: str, decimal_comma: bool) -> str:
    """The number with its thousands separators dropped and a point for its decimals."""
    commas, points = text.count(","), text.count(".")
    if commas and points:
        decimal = "," if text.rindex(",") > text.rindex(".") else "."
        thousands = "." if decimal == "," else ","
        return text.replace(thousands, "").replace(decimal, ".")
    mark = "," if commas else "." if points else ""
    if not mark:
        return text
    if text.count(mark) > 1:
        return text.replace(mark, "")
    digits_after = len(text) - text.index(mark) - 1
    comma_decimal = decimal_comma if digits_after == 3 else True
    point_decimal = not decimal_comma if digits_after == 3 else True
    if mark == ",":
        return text.replace(",", ".") if comma_decimal else text.replace(",", "")
    return text if point_decimal else text.replace(".", "")


def clean_integer(value: Any, *, decimal_comma: bool = False) -> int:
    number = clean_decimal(value, decimal_comma=decimal_comma)
    if number != number.to_integral_value():
        raise CellError(f"“{text_of(value)}” is not a whole number.")
    return int(number)


DATE_FORMATS_DMY = ("%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%y", "%d/%m/%y")
DATE_FORMATS_MDY = ("%m/%d/%Y", "%m-%d-%Y", "%m/%d/%y")
DATE_FORMATS_ANY = (
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d %Y",
    "%B %d %Y",
    "%d-%b-%Y",
    "%d-%b-%y",
)
TIME_FORMATS = ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")


def clean_datetime(value: Any, *, time_zone: str, day_first: bool = True) -> dt.datetime:
    """An aware datetime from ISO 8601, "31.12.2024", "12/31/2024 14:30", "31 Dec 2024",
    or an XLSX date; times without an offset are in the file's ``time_zone``.

    ``day_first`` decides "03/04/2024" (3 April, or 4 March when False); a first number
    above 12 is a day either way.
    """
    zone = zoneinfo.ZoneInfo(time_zone)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=zone)
    text = " ".join(text_of(value).replace(",", " ").split())
    parsed = _parse_datetime(text, day_first)
    if parsed is None:
        raise CellError(f"“{text_of(value)}” is not a date.")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _parse_datetime(text: str, day_first: bool) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    dates = (
        (*DATE_FORMATS_DMY, *DATE_FORMATS_MDY)
        if day_first
        else (*DATE_FORMATS_MDY, *DATE_FORMATS_DMY)
    )
    for date_format in (*dates, *DATE_FORMATS_ANY):
        for time_format in TIME_FORMATS:
            try:
                return dt.datetime.strptime(text, date_format + time_format)  # noqa: DTZ007
            except ValueError:
                continue
    return None


def clean_choice(value: Any, *, choices: Iterable[tuple[str, str]]) -> str:
    """A pick-list value from its stored value or its label, in any case or spacing
    ("C-Level", "c level", "c_level" all give ``c_level``)."""
    text = text_of(value)
    wanted = _choice_key(text)
    for stored, label in choices:
        if wanted in (_choice_key(stored), _choice_key(label)):
            return stored
    allowed = ", ".join(label for stored, label in choices if stored)
    raise CellError(f"“{text}” is not one of: {allowed}.")


class ChoiceReader:
    """``clean_choice`` for one list of choices, their keys worked out once and the
    words a file repeats (a column of a few labels over a million rows) remembered."""

    REMEMBERED = 10_000

    def __init__(self, choices: Iterable[tuple[str, str]]) -> None:
        self.choices = list(choices)
        # The first choice that a key names wins, as in ``clean_choice``.
        self.keys: dict[str, str] = {}
        for stored, label in self.choices:
            self.keys.setdefault(_choice_key(stored), stored)
            self.keys.setdefault(_choice_key(label), stored)
        self.seen: dict[str, str] = {}

    def __call__(self, value: Any) -> str:
        text = text_of(value)
        stored = self.seen.get(text)
        if stored is not None:
            return stored
        stored = self.keys.get(_choice_key(text))
        if stored is None:
            return clean_choice(text, choices=self.choices)  # raises, saying what is allowed
        if len(self.seen) < self.REMEMBERED:
            self.seen[text] = stored
        return stored


def _choice_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", _ascii(text).casefold())


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


# Country names people write, in English and in their own language, and the ISO 3166
# three-letter codes in use, for the commonest countries; any two-letter ISO code is
# taken as it is.
COUNTRY_NAMES = {
    "AR": ("argentina", "arg"),
    "AT": ("austria", "österreich", "osterreich", "aut"),
    "AU": ("australia", "aus"),
    "BE": ("belgium", "belgië", "belgique", "belgien", "bel"),
    "BR": ("brazil", "brasil", "bra"),
    "CA": ("canada", "can"),
    "CH": ("switzerland", "schweiz", "suisse", "svizzera", "che"),
    "CN": ("china", "people's republic of china", "prc", "chn"),
    "CZ": ("czech republic", "czechia", "česko", "cze"),
    "DE": ("germany", "deutschland", "federal republic of germany", "deu", "ger"),
    "DK": ("denmark", "danmark", "dnk"),
    "ES": ("spain", "españa", "espana", "esp"),
    "FI": ("finland", "suomi", "fin"),
    "FR": ("france", "fra"),
    "GB": (
        "united kingdom",
        "uk",
        "u.k.",
        "great britain",
        "britain",
        "england",
        "scotland",
        "wales",
        "northern ireland",
        "gbr",
    ),
    "GR": ("greece", "grc"),
    "HU": ("hungary", "hun"),
    "IE": ("ireland", "éire", "irl"),
    "IL": ("israel", "isr"),
    "IN": ("india", "ind"),
    "IT": ("italy", "italia", "ita"),
    "JP": ("japan", "jpn"),
    "KR": ("south korea", "korea", "republic of korea", "kor"),
    "LU": ("luxembourg", "lux"),
    "MX": ("mexico", "méxico", "mex"),
    "NL": ("netherlands", "the netherlands", "holland", "nederland", "nld"),
    "NO": ("norway", "norge", "nor"),
    "NZ": ("new zealand", "nzl"),
    "PL": ("poland", "polska", "pol"),
    "PT": ("portugal", "prt"),
    "RO": ("romania", "rou"),
    "RU": ("russia", "russian federation", "rus"),
    "SE": ("sweden", "sverige", "swe"),
    "SG": ("singapore", "sgp"),
    "TR": ("turkey", "türkiye", "turkiye", "tur"),
    "AE": ("united arab emirates", "uae", "are"),
    "UA": ("ukraine", "ukr"),
    "US": (
        "united states",
        "united states of america",
        "usa",
        "u.s.",
        "u.s.a.",
        "america",
        "us",
    ),
    "ZA": ("south africa", "zaf"),
}
_COUNTRY_BY_NAME = {name: code for code, names in COUNTRY_NAMES.items() for name in names}
ISO_COUNTRY_CODES = frozenset(
    code for code in phonenumbers.SUPPORTED_REGIONS if len(code) == 2 and code.isalpha()
)


def clean_country(value: Any) -> str:
    """An ISO 3166 two-letter code from a code or a common country name."""
    text = text_of(value)
    key = " ".join(text.casefold().split())
    if key in _COUNTRY_BY_NAME:
        return _COUNTRY_BY_NAME[key]
    if len(key) == 2 and key.upper() in ISO_COUNTRY_CODES:
        return key.upper()
    raise CellError(f"“{text}” is not a country this import knows; use its ISO code (e.g. DE).")
