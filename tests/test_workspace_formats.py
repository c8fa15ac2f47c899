"""The workspace's numbers and dates worked out in Python (``workspace.formats``) read
exactly as the template filters they stand in for write them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import floatformat

from workspace.formats import house_date, whole_number

AMOUNTS = [
    "0",
    "0.49",
    "0.5",
    "1.5",
    "2.5",
    "999.99",
    "1000",
    "12000.00",
    "1234567.5",
    "99999999999999.99",
]


@pytest.mark.parametrize("amount", AMOUNTS)
def test_a_whole_number_reads_as_floatformat_0g_writes_it(amount):
    value = Decimal(amount)

    assert whole_number(value) == floatformat(value, "0g")


@pytest.mark.parametrize(
    "day", [dt.date(2030, 1, 1), dt.date(2026, 9, 5), dt.date(2026, 12, 31), dt.date(2031, 5, 17)]
)
def test_a_house_date_reads_as_the_date_format_writes_it(day):
    assert house_date(day) == date_filter(day, "DATE_FORMAT")
