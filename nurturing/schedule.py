"""When a step may go out: send windows in the lead's or the account's time zone.

Pure functions over datetimes; no database. A lead's zone comes from its country (the
zone most of the country's people live in); countries not listed, and leads without a
country, use the account's ``TIME_ZONE``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

COUNTRY_ZONES = {
    "AE": "Asia/Dubai",
    "AR": "America/Argentina/Buenos_Aires",
    "AT": "Europe/Vienna",
    "AU": "Australia/Sydney",
    "BE": "Europe/Brussels",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "CH": "Europe/Zurich",
    "CL": "America/Santiago",
    "CN": "Asia/Shanghai",
    "CO": "America/Bogota",
    "CZ": "Europe/Prague",
    "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen",
    "EG": "Africa/Cairo",
    "ES": "Europe/Madrid",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "GB": "Europe/London",
    "GR": "Europe/Athens",
    "HK": "Asia/Hong_Kong",
    "HU": "Europe/Budapest",
    "ID": "Asia/Jakarta",
    "IE": "Europe/Dublin",
    "IL": "Asia/Jerusalem",
    "IN": "Asia/Kolkata",
    "IT": "Europe/Rome",
    "JP": "Asia/Tokyo",
    "KE": "Africa/Nairobi",
    "KR": "Asia/Seoul",
    "MX": "America/Mexico_City",
    "MY": "Asia/Kuala_Lumpur",
    "NG": "Africa/Lagos",
    "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo",
    "NZ": "Pacific/Auckland",
    "PH": "Asia/Manila",
    "PL": "Europe/Warsaw",
    "PT": "Europe/Lisbon",
    "RO": "Europe/Bucharest",
    "SA": "Asia/Riyadh",
    "SE": "Europe/Stockholm",
    "SG": "Asia/Singapore",
    "TH": "Asia/Bangkok",
    "TR": "Europe/Istanbul",
    "TW": "Asia/Taipei",
    "UA": "Europe/Kyiv",
    "UK": "Europe/London",
    "US": "America/New_York",
    "VN": "Asia/Ho_Chi_Minh",
    "ZA": "Africa/Johannesburg",
}


def account_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def zone_for_country(country: str) -> ZoneInfo:
    """The time zone of a lead in ``country`` (ISO code), else the account's."""
    name = COUNTRY_ZONES.get((country or "").strip().upper())
    if name is None:
        return account_zone()
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        return account_zone()


def next_in_window(
    when: dt.datetime,
    *,
    zone: dt.tzinfo,
    weekdays: Sequence[int] = (),
    start_hour: int | None = None,
    end_hour: int | None = None,
) -> dt.datetime:
    """The first moment at or after ``when`` inside the window, as an aware datetime.

    ``weekdays`` (0 = Monday) empty means any day; no hours means any time of day. Hours
    are wall-clock hours in ``zone``, ``end_hour`` exclusive.
    """
    local = when.astimezone(zone)
    days = set(weekdays) or set(range(7))
    for offset in range(8):
        day = (local + dt.timedelta(days=offset)).date()
        if day.weekday() not in days:
            continue
        if start_hour is None or end_hour is None:
            opens = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
            closes = opens + dt.timedelta(days=1)
        else:
            opens = dt.datetime.combine(day, dt.time(start_hour), tzinfo=zone)
            closes = dt.datetime.combine(day, dt.time(0), tzinfo=zone) + dt.timedelta(
                hours=end_hour
            )
        if local < closes:
            return max(local, opens).astimezone(dt.UTC)
    return when  # an empty window is refused on save; never delay forever
