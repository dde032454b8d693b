"""Pendo's C-like expression language (``filter``, ``eval``, ``select``, time specs).

Parsed by a small tokenizer + precedence-climbing parser into Python closures: nothing is
ever passed to ``eval``. Supported: ``|| && !``, ``== != < > <= >=``, ``+ - * / %``,
parentheses, dotted field names, ``"..."``/`` `...` `` strings, numbers, ``true false null``,
and the functions in ``_FUNCTIONS`` (``now()``, ``date(y, m, d)``, ``dateAdd(t, n, "days")``,
``startOfPeriod("daily", t)``, ``isNull(x)``, ``len(x)``, ``contains(s, x)``,
``startsWith(s, p)``, ``if(c, a, b)``, ``eventSubType(t)``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

Compiled = Callable[[dict], Any]


class ExpressionError(ValueError):
    """A malformed expression (answered as HTTP 400)."""


@dataclass(frozen=True)
class Context:
    """What time functions need: the subscription time zone and the request's ``now``."""

    timezone: str
    now_ms: int


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>\d+\.\d*|\.\d+|\d+)
      | (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`|'(?:[^'\\]|\\.)*')
      | (?P<name>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$\d][\w$]*)*)
      | (?P<op>\|\||&&|==|!=|<=|>=|[<>!+\-*/%(),])
    )""",
    re.VERBOSE,
)

_BINARY_PRECEDENCE = {
    "||": 1,
    "&&": 2,
    "==": 3,
    "!=": 3,
    "<": 4,
    ">": 4,
    "<=": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"cannot parse expression {text!r} at {pos}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


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


def _unquote(token: str) -> str:
    if token[0] == "`":
        return token[1:-1]
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if a is None or b is None:
        return False
    try:
        if op == "<":
            return a < b
        if op == ">":
            return a > b
        if op == "<=":
            return a <= b
        return a >= b
    except TypeError:  # e.g. string vs number: no match rather than an error mid-stream
        return False


def _arith(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "%":
            return a % b
        result = a / b
        return (
            int(result)
            if isinstance(a, int) and isinstance(b, int) and result.is_integer()
            else result
        )
    except (TypeError, ZeroDivisionError):
        return None


def _local(ctx: Context, ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(ctx.timezone))


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _date(ctx: Context, y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0) -> int:
    return _ms(
        datetime(int(y), int(m), int(d), int(hh), int(mm), int(ss), tzinfo=ZoneInfo(ctx.timezone))
    )


def _date_add(ctx: Context, when: int, n: int, unit: str) -> int:
    local = _local(ctx, when)
    unit = unit.rstrip("s").lower()
    if unit == "hour":
        return int(when + n * 3_600_000)
    if unit == "minute":
        return int(when + n * 60_000)
    if unit in ("day", "week"):
        days = n * (7 if unit == "week" else 1)
        d = local.date() + timedelta(days=days)
        # Calendar arithmetic: the same wall time on the target local day (DST-safe).
        return _ms(
            datetime.combine(d, local.timetz().replace(tzinfo=None)).replace(tzinfo=local.tzinfo)
        )
    if unit == "month":
        month0 = local.month - 1 + int(n)
        y, m = local.year + month0 // 12, month0 % 12 + 1
        return _ms(local.replace(year=y, month=m, day=min(local.day, 28)))
    raise ExpressionError(f"unsupported dateAdd unit {unit!r}")


def _start_of_period(ctx: Context, period: str, when: int) -> int:
    local = _local(ctx, when)
    d: date = local.date()
    period = period.lower()
    if period in ("weekly", "week"):
        d -= timedelta(days=(d.weekday() + 1) % 7)  # weeks start on Sunday
    elif period in ("monthly", "month"):
        d = d.replace(day=1)
    elif period not in ("daily", "day", "dayrange"):
        raise ExpressionError(f"unsupported period {period!r}")
    return _date(ctx, d.year, d.month, d.day)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "now": lambda ctx: ctx.now_ms,
    "date": _date,
    "dateAdd": _date_add,
    "startOfPeriod": _start_of_period,
    "isNull": lambda ctx, x: x is None,
    "len": lambda ctx, x: len(x) if isinstance(x, str | list | dict) else None,
    "contains": lambda ctx, s, x: isinstance(s, str | list) and x in s,
    "startsWith": lambda ctx, s, p: isinstance(s, str) and isinstance(p, str) and s.startswith(p),
    "if": lambda ctx, c, a, b: a if c else b,
    "eventSubType": lambda ctx, t: t,
}
_KEYWORDS = {"true": True, "false": False, "null": None}


class _Parser:
    def __init__(self, text: str, ctx: Context) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.ctx = ctx

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ExpressionError(f"expected {value or 'more'} in expression {self.text!r}")
        self.pos += 1
        return tok

    def parse(self) -> Compiled:
        node = self.binary(0)
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in expression {self.text!r}")
        return node

    def binary(self, min_prec: int) -> Compiled:
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is None or tok[0] != "op" or tok[1] not in _BINARY_PRECEDENCE:
                return left
            op = tok[1]
            prec = _BINARY_PRECEDENCE[op]
            if prec <= min_prec:
                return left
            self.pos += 1
            right = self.binary(prec)
            left = self._combine(op, left, right)

    @staticmethod
    def _combine(op: str, left: Compiled, right: Compiled) -> Compiled:
        if op == "||":
            return lambda r: bool(left(r)) or bool(right(r))
        if op == "&&":
            return lambda r: bool(left(r)) and bool(right(r))
        if op in ("==", "!=", "<", ">", "<=", ">="):
            return lambda r: _compare(op, left(r), right(r))
        return lambda r: _arith(op, left(r), right(r))

    def unary(self) -> Compiled:
        tok = self.peek()
        if tok == ("op", "!"):
            self.pos += 1
            inner = self.unary()
            return lambda r: not inner(r)
        if tok == ("op", "-"):
            self.pos += 1
            inner = self.unary()
            return lambda r: _arith("-", 0, inner(r))
        return self.primary()

    def primary(self) -> Compiled:
        kind, value = self.take()
        if kind == "num":
            number = float(value) if "." in value else int(value)
            return lambda r: number
        if kind == "str":
            text = _unquote(value)
            return lambda r: text
        if kind == "op" and value == "(":
            inner = self.binary(0)
            self.take(")")
            return inner
        if kind == "name":
            if self.peek() == ("op", "("):
                return self.call(value)
            if value in _KEYWORDS:
                constant = _KEYWORDS[value]
                return lambda r: constant
            return lambda r: get_path(r, value)
        raise ExpressionError(f"unexpected {value!r} in expression {self.text!r}")

    def call(self, name: str) -> Compiled:
        fn = _FUNCTIONS.get(name)
        if fn is None:
            raise ExpressionError(f"unknown function {name}()")
        self.take("(")
        args: list[Compiled] = []
        if self.peek() != ("op", ")"):
            args.append(self.binary(0))
            while self.peek() == ("op", ","):
                self.pos += 1
                args.append(self.binary(0))
        self.take(")")
        ctx = self.ctx

        def apply(r: dict) -> Any:
            try:
                return fn(ctx, *(a(r) for a in args))
            except ExpressionError:
                raise
            except (TypeError, ValueError, OverflowError) as exc:
                raise ExpressionError(f"bad arguments to {name}(): {exc}") from exc

        return apply


def compile_expression(text: str, ctx: Context) -> Compiled:
    """Compile an expression string into ``row -> value``."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"expected an expression string, got {text!r}")
    return _Parser(text, ctx).parse()


def evaluate_time(value: Any, ctx: Context) -> int:
    """A timeSeries ``first``/``last``: epoch ms number, numeric string or expression."""
    if isinstance(value, bool):
        raise ExpressionError(f"bad time value {value!r}")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        result = compile_expression(text, ctx)({})
        if isinstance(result, int | float) and not isinstance(result, bool):
            return int(result)
    raise ExpressionError(f"bad time value {value!r}")
