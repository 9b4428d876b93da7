"""From the strings a person types to the query model, with errors that point at the token.

status >= 500                    route = "/api/v1/orders/{id}"     user.id in (1, 2, 3)
error.message contains timeout   `odd field name` exists           p99(duration_ms)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import pairwise

from .model import CALC_OPS, FILTER_OPS, LIST_OPS, UNARY_OPS, Calc, Filter, Having, Order


class QueryError(ValueError):
    """A malformed expression; ``str()`` shows the text with a caret under the bad token."""

    def __init__(
        self, message: str, text: str = "", position: int | None = None, width: int = 1
    ) -> None:
        self.message = message
        self.text = text
        self.position = position
        self.width = max(1, width)
        super().__init__(self._render())

    def _render(self) -> str:
        if self.position is None or not self.text:
            return self.message
        caret = " " * (self.position + 2) + "^" * self.width
        return f"{self.message}\n  {self.text}\n{caret}"


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "str", "ident", "op", "(", ")", ","
    text: str
    pos: int
    end: int


_SYMBOLS = (">=", "<=", "!=", "=", ">", "<")
_STOP = set(" \t\n\"'`(),=<>")
# In quotes, a backslash takes the next character as it is, except these line breaks and tab
# (so a value with a newline fits on one line: the UI writes one filter a line).
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "\"'`":
            j, out = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                    out.append(_ESCAPES.get(text[j], text[j]))
                else:
                    out.append(text[j])
                j += 1
            if j >= n:
                raise QueryError("unclosed quote", text, i)
            tokens.append(Token("ident" if c == "`" else "str", "".join(out), i, j + 1))
            i = j + 1
            continue
        if c in "(),":
            tokens.append(Token(c, c, i, i + 1))
            i += 1
            continue
        sym = next((s for s in _SYMBOLS if text.startswith(s, i)), None)
        if sym is not None:
            tokens.append(Token("op", sym, i, i + len(sym)))
            i += len(sym)
            continue
        j = i
        while j < n and text[j] not in _STOP and not text.startswith("!=", j):
            j += 1
        tokens.append(Token("word", text[i:j], i, j))
        i = j
    return tokens


def _field(tok: Token | None, text: str, what: str = "a field name") -> str:
    if tok is None:
        raise QueryError(f"expected {what}", text, len(text))
    if tok.kind not in ("word", "ident", "str"):
        raise QueryError(f"expected {what}, found {tok.text!r}", text, tok.pos, tok.end - tok.pos)
    return tok.text


def _touching(tokens: list[Token]) -> bool:
    """No space between any two of *tokens*, and no quoted one among them."""
    return all(t.kind != "str" and t.kind != "ident" for t in tokens) and all(
        a.end == b.pos for a, b in pairwise(tokens)
    )


def parse_filter(text: str) -> Filter:
    """``FIELD OP VALUE``; ``FIELD exists``; ``FIELD in (A, B)``."""
    tokens = tokenize(text)
    if not tokens:
        raise QueryError("empty filter: write FIELD OP VALUE, for example 'status >= 500'")
    field = _field(tokens[0], text)
    if len(tokens) < 2:
        raise QueryError(
            f"expected an operator after {field!r} ({' '.join(FILTER_OPS)})", text, len(text)
        )
    op_tok = tokens[1]
    op = op_tok.text.lower() if op_tok.kind in ("word", "op") else ""
    if op not in FILTER_OPS:
        raise QueryError(
            f"unknown operator {op_tok.text!r}: use one of {' '.join(FILTER_OPS)}",
            text,
            op_tok.pos,
            op_tok.end - op_tok.pos,
        )
    rest = tokens[2:]
    if op in UNARY_OPS:
        if rest:
            raise QueryError(f"{op!r} takes no value", text, rest[0].pos, rest[0].end - rest[0].pos)
        return Filter(field, op)
    if op in LIST_OPS:
        return Filter(field, op, tuple(_value_list(rest, text)))
    if not rest:
        raise QueryError(f"expected a value after {op!r}", text, len(text))
    value = rest[0]
    if value.kind not in ("word", "str"):
        raise QueryError(f"expected a value, found {value.text!r}", text, value.pos)
    if len(rest) > 1:
        if value.kind == "word" and _touching(rest):
            # A bare value with no space in it is all of it, operator characters too: a
            # Flask or Django route template (http.route = /users/<int:user_id>).
            return Filter(field, op, (text[value.pos : rest[-1].end],))
        # The first token apart from the value: after a quoted value, the next one; after a
        # bare one, the first after a space or quoted.
        extra = (
            rest[1]
            if value.kind != "word"
            else next(b for a, b in pairwise(rest) if not _touching([a, b]))
        )
        raise QueryError(
            f"unexpected {extra.text!r} after the value: quote a value that has spaces or quotes",
            text,
            extra.pos,
            extra.end - extra.pos,
        )
    return Filter(field, op, (value.text,))


def _value_list(tokens: list[Token], text: str) -> list[str]:
    if not tokens or tokens[0].kind != "(":
        pos = tokens[0].pos if tokens else len(text)
        raise QueryError("expected a list in parentheses, for example (200, 204)", text, pos)
    values: list[str] = []
    expect_value = True
    for tok in tokens[1:]:
        if tok.kind == ")":
            if expect_value and values:
                raise QueryError("expected a value before ')'", text, tok.pos)
            if tok is not tokens[-1]:
                nxt = tokens[tokens.index(tok) + 1]
                raise QueryError(f"unexpected {nxt.text!r} after the list", text, nxt.pos)
            if not values:
                raise QueryError("the list is empty", text, tok.pos)
            return values
        if expect_value:
            if tok.kind not in ("word", "str"):
                raise QueryError(f"expected a value, found {tok.text!r}", text, tok.pos)
            values.append(tok.text)
            expect_value = False
        else:
            if tok.kind != ",":
                raise QueryError(f"expected ',' or ')', found {tok.text!r}", text, tok.pos)
            expect_value = True
    raise QueryError("unclosed '(' in the list", text, tokens[0].pos)


def parse_calc(text: str) -> Calc:
    """``count``, ``count_distinct(F)``, ``sum|avg|min|max(F)``, ``p50…p999(F)``, ``heatmap(F)``."""
    tokens = tokenize(text)
    if not tokens or tokens[0].kind != "word":
        raise QueryError(f"expected a calculation ({', '.join(CALC_OPS)})", text, 0)
    op = tokens[0].text.lower()
    if op not in CALC_OPS:
        raise QueryError(
            f"unknown calculation {tokens[0].text!r}: use one of {', '.join(CALC_OPS)}",
            text,
            tokens[0].pos,
            tokens[0].end - tokens[0].pos,
        )
    rest = tokens[1:]
    if op == "count":
        if rest and not (len(rest) == 2 and rest[0].kind == "(" and rest[1].kind == ")"):
            raise QueryError("count takes no field", text, rest[0].pos)
        return Calc("count")
    if len(rest) != 3 or rest[0].kind != "(" or rest[2].kind != ")":
        pos = rest[0].pos if rest else len(text)
        raise QueryError(f"write {op}(FIELD)", text, pos)
    return Calc(op, _field(rest[1], text))


def parse_having(text: str) -> Having:
    """``CALC OP NUMBER``, for example ``count > 100`` or ``p99(duration_ms) >= 1000``."""
    tokens = tokenize(text)
    ops = [i for i, t in enumerate(tokens) if t.kind == "op"]
    if len(ops) != 1:
        raise QueryError("write CALC OP NUMBER, for example 'count > 100'", text, 0)
    i = ops[0]
    calc_text = text[: tokens[i].pos].strip()
    calc = parse_calc(calc_text)
    if len(tokens) != i + 2 or tokens[i + 1].kind != "word":
        raise QueryError("expected a number", text, tokens[i].end)
    try:
        value = float(tokens[i + 1].text)
    except ValueError:
        raise QueryError("expected a number", text, tokens[i + 1].pos) from None
    return Having(calc, tokens[i].text, value)


def parse_order(text: str) -> Order:
    """``KEY [asc|desc]`` where KEY is a calculation as written or a group-by field."""
    parts = text.strip().rsplit(None, 1)
    if len(parts) == 2 and parts[1].lower() in ("asc", "desc"):
        return Order(parts[0].strip(), parts[1].lower() == "desc")
    if not text.strip():
        raise QueryError("empty order: write KEY [asc|desc]")
    return Order(text.strip(), True)


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


MAX_DURATION = timedelta(days=100 * 365)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w`` (for ``--since`` and ``--granularity``)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text))
    if not m:
        raise QueryError(f"{text!r} is not a duration such as 90s, 15m, 1h, 7d or 2w")
    try:
        value = timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    except OverflowError:
        value = MAX_DURATION * 2
    if value > MAX_DURATION:
        raise QueryError(f"{text!r} is longer than the {MAX_DURATION.days // 365} years we go back")
    return value


def parse_time(text: str, flag: str = "time") -> datetime:
    """An ISO time such as ``2026-11-26T08:00Z``; a time without a zone is UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{flag} {text!r} is not an ISO time such as 2026-11-26T08:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
