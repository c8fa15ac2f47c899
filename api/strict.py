"""Input the API refuses instead of guessing: unknown fields and unstorable JSON.

DRF ignores fields a serializer does not know, so a misspelt ``frist_name`` would be
dropped silently; here it answers 400 naming the field. Free-form JSON (activity
properties, custom fields) is checked for what PostgreSQL cannot store (NUL characters,
lone surrogates, numbers that are not finite) and for size and depth, so bad input is a
field error, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

UNKNOWN_FIELD = "This field is not known."
# Python's JSON parser reads NaN and Infinity, and 1e999 as infinity; JSON has no such
# numbers, and PostgreSQL's JSONB refuses them.
NOT_FINITE = (
    "Numbers must be finite: NaN, Infinity and numbers beyond ±1.8e308 (such as 1e999) "
    "cannot be stored."
)
NOT_TEXT = "Give text, in quotes."
NOT_A_LIST = "Give a list."


class StrictFieldsMixin(serializers.Serializer):
    """Refuses a body with fields the serializer does not declare (read-only ones are
    known), and a number or boolean for a text field, which DRF would turn into text."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            if unknown:
                raise serializers.ValidationError({name: [UNKNOWN_FIELD] for name in unknown})
            wrong = {name: self._wrong_type(name, value) for name, value in data.items()}
            if any(wrong.values()):
                raise serializers.ValidationError({k: [v] for k, v in wrong.items() if v})
        return super().to_internal_value(data)

    def _wrong_type(self, name: str, value: Any) -> str | None:
        """What a value DRF would coerce is instead: text for a number, a list for an object."""
        field = self.fields[name]
        if field.read_only:
            return None
        if isinstance(field, serializers.CharField) and isinstance(value, int | float | bool):
            return NOT_TEXT
        many = (serializers.ManyRelatedField, serializers.ListField, serializers.ListSerializer)
        if isinstance(field, many) and value is not None and not isinstance(value, list):
            return NOT_A_LIST
        return None


def check_json_document(value: Any, *, max_depth: int, max_bytes: int) -> None:
    """Raise ``ValidationError`` unless ``value`` nests at most ``max_depth`` levels, takes
    at most ``max_bytes`` as compact JSON, holds no NUL or lone surrogate in any text and
    no number that is not finite.

    The compact JSON text answers all three for most documents at once: it has at least
    as many brackets as the document has levels, shows a NUL as ``\\u0000`` and keeps a
    lone surrogate, which UTF-8 cannot encode. Only a document it cannot clear is walked.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        size: int | None = len(text.encode())
    except RecursionError:  # nested deeper than the encoder goes, so far too deep
        text, size = "", None
    except UnicodeEncodeError:
        size = None
    except ValueError:  # what ``allow_nan=False`` raises
        raise serializers.ValidationError(NOT_FINITE) from None
    if size is None or text.count("{") + text.count("[") > max_depth or "\\u0000" in text:
        if json_depth(value) > max_depth:
            raise serializers.ValidationError(f"Nest at most {max_depth} levels deep.")
        problem = unstorable_text(value)
        if problem:
            raise serializers.ValidationError(problem)
    if size is not None and size > max_bytes:
        raise serializers.ValidationError(f"Keep this under {max_bytes // 1024} KB of JSON.")


def json_depth(value: Any) -> int:
    """How many levels of objects and arrays ``value`` nests (0 for a scalar)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def unstorable_text(value: Any) -> str | None:
    """Why some text in ``value`` (keys included) cannot be stored, or None.

    PostgreSQL refuses NUL in text and JSON, and no encoding can write a lone surrogate
    (which a JSON escape such as ``"\\ud800"`` can produce).
    """
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            if "\x00" in node:
                return "Text may not contain NUL characters."
            if _has_surrogate(node):
                return "Text may not contain lone surrogates."
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
