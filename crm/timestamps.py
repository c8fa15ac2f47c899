"""Times with a UTC offset that the database can store.

ISO 8601 allows offsets up to ±23:59 and Python up to just under a day, but PostgreSQL
refuses a ``timestamptz`` written with an offset beyond ±15:59 ("time zone displacement
out of range"). Every zone in use lies between -12:00 and +14:00, so a larger offset is
a mistake, refused with this message rather than sent to the database.
"""

from __future__ import annotations

import datetime as dt

MAX_UTC_OFFSET = dt.timedelta(hours=15, minutes=59)
OFFSET_OUT_OF_RANGE = "Give a UTC offset between -15:59 and +15:59."


def offset_out_of_range(at: dt.datetime) -> bool:
    """Whether ``at`` carries a UTC offset the database cannot store."""
    offset = at.utcoffset()
    return offset is not None and abs(offset) > MAX_UTC_OFFSET
