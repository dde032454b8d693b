"""Dotted field paths and the one shape of ``filter`` expression the client sends.

Pendo's expression language is C-like and large; the client only ever filters on one field
against a literal (``metadata.auto.lastupdated >= 1700000000000`` for incremental entities,
``visitorId > "abc"`` for paging). That is all this parses; anything else answers 400 like a
filter Pendo cannot parse, so nobody is silently answered the wrong rows.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

Compiled = Callable[[dict], Any]


class ExpressionError(ValueError):
    """A filter expression the emulator does not parse (answered as HTTP 400)."""


_FIELD = r"[A-Za-z_$][\w$]*(?:\.[\w$]+)*"
_FILTER = re.compile(
    rf"""\s*(?P<path>{_FIELD})
        \s*(?P<op>==|!=|<=|>=|<|>)
        \s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>"(?:[^"\\]|\\.)*"))\s*""",
    re.VERBOSE,
)
_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def is_field(value: Any) -> bool:
    """A dotted field name (``metadata.auto.lastupdated``), not ``-field`` or ``!field``."""
    return isinstance(value, str) and re.fullmatch(_FIELD, value) is not None


def get_path(row: Any, path: str) -> Any:
    """Value at a dotted path, ``None`` when any part is missing."""
    value = row
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def set_path(row: dict, path: str, value: Any) -> dict:
    """A copy of ``row`` with ``path`` set; nested dicts on the path are copied, not mutated
    (rows may be cached and shared)."""
    head, _, rest = path.partition(".")
    out = dict(row)
    if rest:
        inner = out.get(head)
        out[head] = set_path(inner if isinstance(inner, dict) else {}, rest, value)
    else:
        out[head] = value
    return out


def compile_filter(text: Any) -> Compiled:
    """``<dotted field> <comparison> <number or "string">`` as ``row -> bool``."""
    m = _FILTER.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ExpressionError(
            f"Cannot parse filter expression {text!r} "
            '(emulator: <field> <==|!=|<|>|<=|>=> <number or "string">)'
        )
    path, compare = m["path"], _COMPARE[m["op"]]
    if m["num"] is not None:
        literal: Any = float(m["num"]) if "." in m["num"] else int(m["num"])
    else:
        literal = re.sub(r"\\(.)", r"\1", m["str"][1:-1])

    def predicate(row: dict) -> bool:
        value = get_path(row, path)
        if compare in (operator.eq, operator.ne):
            return compare(value, literal)
        try:
            return value is not None and compare(value, literal)
        except TypeError:  # e.g. string vs number: no match rather than an error mid-stream
            return False

    return predicate
