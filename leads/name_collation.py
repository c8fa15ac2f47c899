"""The order the name sort compares names in, on SQLite (``NameSortKey``).

PostgreSQL compares them in ICU's root locale (``NAME_COLLATION``). SQLite has no such
collation, so one is registered on each of its connections: names compare with accents
and case set aside ("Émile" among the E's, "ada" before "Bob"), and as written only to
break a tie, so that the order is total and keyset pages agree with it.
"""

from __future__ import annotations

import unicodedata
from typing import Any

SQLITE_NAME_COLLATION = "hotlist_name"


def name_order(text: str) -> tuple[str, str]:
    """The key a name sorts by: without accents and case, then as written."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return bare.casefold(), text


def compare_names(a: str, b: str) -> int:
    left, right = name_order(a), name_order(b)
    return (left > right) - (left < right)


def name_collation_register(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created``: give a new SQLite connection the name collation."""
    if connection.vendor == "sqlite":
        connection.connection.create_collation(SQLITE_NAME_COLLATION, compare_names)
