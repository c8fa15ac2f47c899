"""Regular expressions that mean the same in Python and in PostgreSQL.

A rule's pattern runs in Python (real-time scoring) and in PostgreSQL (set-based
rescores); ``regex_dialects`` refuses what only one side reads the same way and spells
the rest for each side.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

from .rule_fields import RuleError

# Regular expressions run in Python (real-time scoring) and in PostgreSQL (set-based
# rescores), whose dialects differ. A rule's pattern is written in the common subset,
# with Python's spelling; ``regex_dialects`` refuses what only one side understands or
# what means different things, and spells the rest for each side.
_REGEX_REFUSED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\(\?P"), "named groups (?P…)"),
    (re.compile(r"\(\?>"), "atomic groups (?>…)"),
    (re.compile(r"\(\?\("), "conditional groups (?(…)…)"),
    (re.compile(r"\(\?[aiLmsux-]"), "inline flags such as (?i) (matching ignores case anyway)"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers such as *+"),
    (re.compile(r"\{,"), "{,n} without a lower bound (write {0,n})"),
    (re.compile(r"\[:[a-z]+:\]"), "POSIX classes such as [[:alpha:]] (write [a-z] or \\w)"),
    (re.compile(r"\\N\{"), "named characters \\N{…}"),
]


@lru_cache(maxsize=512)
def regex_dialects(pattern: str) -> tuple[str, str]:
    """The pattern for Python's ``re`` and for PostgreSQL's ``~*``, or a RuleError.

    Both match case-insensitively and let ``.`` match a line break; ``$`` is the end of
    the text (Python would also match before a final line break); the word boundaries
    ``\\b`` and ``\\B`` are ``\\y`` and ``\\Y`` in PostgreSQL, where ``\\b`` is a backspace.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set"
            re.compile(pattern)
    except re.error as exc:
        raise RuleError(f"“{pattern}” is not a valid regular expression: {exc}.") from exc
    for construct, what in _REGEX_REFUSED:
        if construct.search(_without_escapes(pattern)):
            raise RuleError(
                f"“{pattern}” uses {what}, which the database's regular expressions do not "
                "read the same way; write it without."
            )
    python, postgres = [], []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            pair = pattern[i : i + 2]
            if not in_class and pair[1] in "bB":
                python.append(pair)
                postgres.append("\\y" if pair[1] == "b" else "\\Y")
            else:
                python.append(pair)
                postgres.append(pair)
            i += 2
            continue
        if in_class:
            if char == "]" and not _class_opened_at(pattern, i):
                in_class = False
        elif char == "[":
            in_class = True
        elif char == "$":
            python.append("\\Z")
            postgres.append("$")
            i += 1
            continue
        python.append(char)
        postgres.append(char)
        i += 1
    return "".join(python), "".join(postgres)


def _without_escapes(pattern: str) -> str:
    """The pattern with every escaped character blanked, so ``\\(?P`` is not a group."""
    return re.sub(r"\\.", "__", pattern)


def _class_opened_at(pattern: str, index: int) -> bool:
    """Whether the ``]`` at ``index`` is the first character of its class (a literal)."""
    start = index - 1
    if start >= 0 and pattern[start] == "^":
        start -= 1
    return start >= 0 and pattern[start] == "[" and (start == 0 or pattern[start - 1] != "\\")


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> re.Pattern[str]:
    python, _ = regex_dialects(pattern)
    return re.compile(python, re.IGNORECASE | re.DOTALL)


def postgres_regex(pattern: str) -> str:
    return regex_dialects(pattern)[1]
