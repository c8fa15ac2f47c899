"""Numbers and dates as the workspace's pages write them, for the pages that write many
(the leads list's rows, the deal board's cards): worked out once in Python, where a
template filter per value (``floatformat``, ``date``) looks up the locale's formats on
every call and cost more than the rest of a row.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal


def whole_number(value: Decimal) -> str:
    """``value`` rounded half up to a whole number, with thousands separated by commas:
    what ``{{ value|floatformat:"0g" }}`` writes ("12,000")."""
    return f"{int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP)):,}"


def house_date(day: dt.date) -> str:
    """``day`` in the house format of dates, ``DATE_FORMAT`` ("j M Y", ``crm/formats``):
    "6 Dec 2026"."""
    return f"{day.day} {day:%b %Y}"
