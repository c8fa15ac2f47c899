"""Finding leads, companies and deals by what a person types: a full name in either
order, an email address or part of one, a phone number in any format, a company's name
or a deal's name.

One search for every surface: the leads list's ``q`` filter (``leads.filters``), the
REST API's, and the search box in the workspace's header, so that the header's "all N
leads" opens a list holding the same leads.

- Names: every word must be in the first or the last name, so "Katharina Wolf" and
  "Wolf Katharina" both find her; one word may also be in the email address.
- Companies: the whole text in the company's name; a lead is found by its company's.
- Phones: text made of digits and phone punctuation only, with at least
  ``PHONE_MIN_DIGITS`` digits, is a phone number. It is read with ``phonenumbers`` the
  way the duplicate scan reads numbers (``leads.duplicates.phone_key``) and compared by
  its national number against the end of each stored number's digits, so that
  "+49 30 1234567", "0049 (30) 123-4567" and "030 1234567" find one another whichever
  of them was stored.

On PostgreSQL, ``LOWER(column) LIKE '%word%'`` is answered by the trigram indexes on the
lead's names and email and the company's name (migration ``lead_list_indexes``) and on
the deal's name, and the phone's end by a B-tree on the stored number's digits
reversed, read as a prefix (migration ``search_indexes``). SQLite runs the same
searches without indexes: its phone match compares the end of the digits directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from django.db import connection
from django.db.models import CharField, F, Func, Q, QuerySet, Value
from django.db.models.functions import Lower, Replace

from crm.models import User

from .duplicates import phone_key
from .models import Company, Deal, Lead
from .permissions import companies_visible_to

# Companies whose names match a search, looked up first; their ids then join the
# search on leads, so every part of it can use an index.
SEARCH_COMPANIES_MAX = 500
# Shorter text holds no trigram, so no index could answer it: the header waits for more.
SEARCH_MIN_LENGTH = 3
SEARCH_MAX_LENGTH = 100
# What the header shows of each kind, and how far it counts the leads found.
FINDINGS_PER_GROUP = 8
FINDINGS_COUNT_CAP = 1000
PHONE_MIN_DIGITS = 5
PHONE_TEXT = re.compile(r"\+?[\d\s().\-/]+")
# What people write between a phone number's digits; SQLite strips these one by one.
PHONE_PUNCTUATION = (" ", "+", "-", "(", ")", ".", "/")


class ReversedDigits(Func):
    """A text's digits alone, last first: on PostgreSQL the expression that the phone
    index (``lead_phone_digits_idx``) is built on, written out the same way."""

    template = "REVERSE(REGEXP_REPLACE(%(expressions)s, '[^0-9]', '', 'g'))"
    output_field = CharField()


def search_text(value: str) -> str:
    """What a search runs on: single-spaced, without blanks at either end."""
    return " ".join(value.split())


def phone_suffix(text: str) -> str:
    """The digits a stored number ends with when it is the number ``text`` writes, or
    "" when ``text`` is not a phone number: the national number of an international
    one (a leading ``00`` read as ``+``), else the digits without the trunk's zeros."""
    if not PHONE_TEXT.fullmatch(text):
        return ""
    digits = re.sub(r"\D", "", text)
    if len(digits) < PHONE_MIN_DIGITS:
        return ""
    written = text.strip()
    if digits.startswith("00") and not written.startswith("+"):
        written = f"+{digits[2:]}"
    key = phone_key(written)
    if key.startswith("+"):
        return str(phonenumbers.parse(key).national_number)
    return digits.lstrip("0") or digits


def leads_with_phone(queryset: QuerySet[Lead], suffix: str) -> QuerySet[Lead]:
    """The leads whose stored phone's digits end with ``suffix``."""
    if connection.vendor == "postgresql":
        return queryset.alias(phone_reversed=ReversedDigits("phone")).filter(
            phone_reversed__startswith=suffix[::-1]
        )
    digits: F | Func = F("phone")
    for mark in PHONE_PUNCTUATION:
        digits = Replace(digits, Value(mark), Value(""))
    return queryset.alias(phone_digits=digits).filter(phone_digits__endswith=suffix)


def leads_search(queryset: QuerySet[Lead], text: str) -> QuerySet[Lead]:
    """The leads of ``queryset`` that ``text`` finds (module docstring)."""
    text = search_text(text)
    if not text:
        return queryset
    suffix = phone_suffix(text)
    if suffix:
        return leads_with_phone(queryset, suffix)
    term = text.lower()
    words = term.split()
    matches = Q()
    for word in words:
        matches &= Q(first_name_lower__contains=word) | Q(last_name_lower__contains=word)
    if len(words) == 1:
        # An email address holds no blanks; skipping it spares a trigram scan whose
        # common trigrams (every address has "com") cost hundreds of ms on a big table.
        matches |= Q(email_lower__contains=term)
    companies = companies_search(Company.objects.order_by(), term).values_list("pk", flat=True)
    company_ids = list(companies[:SEARCH_COMPANIES_MAX])
    if company_ids:
        matches |= Q(company_id__in=company_ids)
    return queryset.alias(
        first_name_lower=Lower("first_name"),
        last_name_lower=Lower("last_name"),
        email_lower=Lower("email"),
    ).filter(matches)


def companies_search(queryset: QuerySet[Company], text: str) -> QuerySet[Company]:
    """The companies whose name holds ``text``, any case."""
    term = search_text(text).lower()
    return queryset.alias(name_lower=Lower("name")).filter(name_lower__contains=term)


def deals_search(queryset: QuerySet[Deal], text: str) -> QuerySet[Deal]:
    """The deals whose name holds ``text``, any case."""
    term = search_text(text).lower()
    return queryset.alias(name_lower=Lower("name")).filter(name_lower__contains=term)


@dataclass(frozen=True)
class SearchFindings:
    """What one search finds for one person, a few of each kind (``FINDINGS_PER_GROUP``)."""

    text: str
    leads: list[Lead]
    lead_count: int
    more_leads: bool
    companies: list[Company]
    deals: list[Deal]

    @property
    def empty(self) -> bool:
        return not (self.leads or self.companies or self.deals)


def search_findings(*, user: User, text: str, limit: int = FINDINGS_PER_GROUP) -> SearchFindings:
    """The leads (hottest first, with how many there are, counted up to
    ``FINDINGS_COUNT_CAP``), companies and deals ``text`` finds among what ``user`` may
    see: the leads ``Lead.objects.visible_to`` gives, every company for anyone with a
    role (``companies_visible_to``), the deals of visible leads. ``text`` of at least
    ``SEARCH_MIN_LENGTH`` characters, which the caller checks."""
    text = search_text(text)
    visible = Lead.objects.visible_to(user)
    found = leads_search(visible, text).order_by().values_list("pk", flat=True)
    ids = list(found[: FINDINGS_COUNT_CAP + 1])
    counted = len(ids)
    # The hottest of few leads are sorted after finding them all (by the search's
    # indexes); of many, by walking the rank's hottest-first index until some match. The
    # planner cannot tell which from its estimates: for a full name it walked the
    # whole rank index for the one lead that matched (600 ms at 1M leads).
    if counted <= FINDINGS_COUNT_CAP:
        hottest: QuerySet[Lead] = Lead.objects.filter(pk__in=ids).hottest()
    else:
        hottest = leads_search(visible.hottest(), text)
    companies = companies_search(companies_visible_to(user), text).order_by("name", "pk")
    deals = deals_search(Deal.objects.filter(lead__in=visible.order_by().values("pk")), text)
    return SearchFindings(
        text=text,
        leads=list(hottest.select_related("company", "owner")[:limit]),
        lead_count=min(counted, FINDINGS_COUNT_CAP),
        more_leads=counted > FINDINGS_COUNT_CAP,
        companies=list(companies[:limit]),
        deals=list(deals.select_related("lead__company").order_by("-created_at", "-pk")[:limit]),
    )
