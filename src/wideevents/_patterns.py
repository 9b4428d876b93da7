"""What counts as a secret: key patterns, value patterns, and the cheap prefilter before them.

The value patterns are the precise test. Each has *needles*: byte strings, one of which occurs
in every text the pattern can match once the text is lowercased (and, for card numbers, its
digits mapped to "0"), so a text that contains no needle cannot match any pattern. The
prefilter looks for needles across a whole batch at C speed; only the texts it flags meet a
regex. A test checks that the needles cover every pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Substring of a lowercased key, with word-ish boundaries where a bare substring would catch
# ordinary words ("author", "classname", "spinner").
KEY_PATTERN = (
    r"pass(?:w(?:or)?d|phrase)|(?<![a-z])pwd(?![a-z])|secret|token|auth(?!or(?!i[sz]))"
    r"|credential|priv(?:ate)?[_\-. ]?key|api[_\-. ]?key|access[_\-. ]?key|session|cookie"
    r"|csrf|xsrf|jwt|(?<![a-z])ssn(?![a-z])|credit[_\-. ]?card"
    r"|card[_\-. ]?(?:number|num|no)(?![a-z])"
    r"|(?<![a-z])cvv|(?<![a-z])cvc(?![a-z])|(?<![a-z])iban(?![a-z])|(?<![a-z])pin(?![a-z])"
    r"|signature"
)

# Sensitive words as they appear in "key=value" text and URL query strings.
_KV_WORDS = (
    r"pass(?:w(?:or)?d|phrase)?|pwd|secret|token|auth(?!or(?!i[sz]))\w*|credential|api[_\-]?key"
    r"|access[_\-]?key|private[_\-]?key|session\w*|sid|cookie|csrf\w*|xsrf\w*|jwt|signature"
    r"|sig|ssn|cvv|cvc|iban|card[_\-]?(?:number|num|no)"
)


class ValuePattern:
    """A secret's shape: a regex, its replacement, and the needles that gate it."""

    __slots__ = ("anchors", "kind", "needles", "regex", "replace", "table")

    def __init__(
        self,
        kind: str,
        regex: str,
        needles: tuple[bytes, ...],
        replace: str | Callable[[re.Match[str]], str] | None = None,
        flags: int = 0,
        table: bytes | None = None,
        anchors: bytes = b"",
        ascii_only: bool = True,
    ) -> None:
        self.kind = kind
        # ASCII semantics: under IGNORECASE, Unicode would let U+017F (long s) match "s", which the
        # lowercased needles do not see.
        self.regex = re.compile(regex, flags | (re.ASCII if ascii_only else 0))
        self.needles = needles
        self.table = table  # applied to the lowercased text before the needles are sought
        # Bytes of which every match holds at least one: absent from a whole batch, the
        # pattern's needles are not even sought.
        self.anchors = anchors
        self.replace: str | Callable[[re.Match[str]], str] = (
            f"[REDACTED:{kind}]" if replace is None else replace
        )


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(m: re.Match[str]) -> str:
    text = m.group(0)
    digits = text.replace(" ", "").replace("-", "")
    # Issuer prefixes of the major networks (Visa 4, Mastercard 2/5, Amex 34/37,
    # Discover/UnionPay 6, JCB/Diners 3): other long numbers are ids, not cards.
    if 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn_ok(digits):
        return "[REDACTED:card]"
    return text


def _keep_prefix(m: re.Match[str]) -> str:
    return m.group(1) + "[REDACTED]"


_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
_CARD_EDGE = (r"(?<![0-9A-Za-z])(?<![0-9A-Za-z]-)", r"(?!-?[0-9A-Za-z])")  # not inside an id

VALUE_PATTERNS: tuple[ValuePattern, ...] = (
    ValuePattern(
        "private-key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        (b"-----",),
    ),
    ValuePattern(
        "jwt",
        r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        (b"eyj",),
        anchors=b".",
    ),
    ValuePattern(
        "bearer",
        r"((?i:bearer)[ \t]+)[A-Za-z0-9._~+/=-]{8,}",
        (b"bearer",),
        _keep_prefix,
        anchors=b" \t",
    ),
    ValuePattern(
        "basic",
        r"((?i:basic)[ \t]+)(?=[A-Za-z0-9+/]*[A-Z0-9+/=])[A-Za-z0-9+/]{6,}=*",
        (b"basic",),
        _keep_prefix,
        anchors=b" \t",
    ),
    ValuePattern("aws-key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", (b"akia", b"asia")),
    ValuePattern("gcp-key", r"\bAIza[0-9A-Za-z_-]{35}", (b"aiza",)),
    ValuePattern(
        "github-token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        (b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"github_pat_"),
        anchors=b"_",
    ),
    ValuePattern("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", (b"xox",), anchors=b"-"),
    ValuePattern(
        "stripe-key",
        r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
        (b"k_live_", b"k_test_"),
        anchors=b"_",
    ),
    ValuePattern(
        "url-password",
        r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^/\s@]+(?=@)",
        (b"@",),
        _keep_prefix,
    ),
    ValuePattern(
        "kv",
        r"((?<![A-Za-z0-9])(?:[A-Za-z0-9_.\-\[\]]*?)(?:"
        + _KV_WORDS
        + r")[A-Za-z0-9_.\-\[\]]*\s*=\s*)"
        r"[^\s&\"',;]+",
        (b"=",),
        _keep_prefix,
        re.IGNORECASE,
    ),
    # The same in quotes: a SQL literal (password = 'x y'), JSON text ("token": "..."), a
    # config line; the whole quoted value goes, spaces included.
    ValuePattern(
        "kv-quoted",
        r"((?<![A-Za-z0-9])(?:[A-Za-z0-9_.\-\[\]]*?)(?:"
        + _KV_WORDS
        + r")[A-Za-z0-9_.\-\[\]]*[\"']?\s*[:=]\s*([\"']))(?:\\.|(?!\2)[^\\])+",
        (b"'", b'"'),
        _keep_prefix,
        re.IGNORECASE,
        anchors=b"'\"",
    ),
    # Card numbers: 13-19 digits in a row, or grouped 4-4-4-x (Visa, Mastercard ...) or
    # 4-6-5 (Amex) with one kind of separator; never part of a longer token (a UUID).
    ValuePattern(
        "card",
        _CARD_EDGE[0] + r"[0-9]{13,19}" + _CARD_EDGE[1],
        (b"0" * 13,),
        _card,
        table=_DIGITS,
    ),
    ValuePattern(
        "card",
        _CARD_EDGE[0]
        + r"(?:[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{1,7}|[0-9]{4}-[0-9]{6}-[0-9]{4,5})"
        + _CARD_EDGE[1],
        (b"0000-0000-0000-0", b"0000-000000-0000"),
        _card,
        table=_DIGITS,
        anchors=b"-",
    ),
    ValuePattern(
        "card",
        _CARD_EDGE[0]
        + r"(?:[0-9]{4} [0-9]{4} [0-9]{4} [0-9]{1,7}|[0-9]{4} [0-9]{6} [0-9]{4,5})"
        + _CARD_EDGE[1],
        (b"0000 0000 0000 0", b"0000 000000 0000"),
        _card,
        table=_DIGITS,
        anchors=b" ",
    ),
)

# In exception messages, "password: hunter2" too (they are scanned in full, never prefiltered).
MESSAGE_PATTERNS: tuple[ValuePattern, ...] = (
    *VALUE_PATTERNS,
    ValuePattern(
        "kv",
        r"((?<![A-Za-z0-9])(?:" + _KV_WORDS + r")[A-Za-z0-9_.\-]*\s*[:=]\s*[\"']?)[^\s&\"',;]+",
        (),
        _keep_prefix,
        re.IGNORECASE,
    ),
)


def needle_groups(
    patterns: tuple[ValuePattern, ...],
) -> list[tuple[bytes | None, bytes, tuple[bytes, ...]]]:
    """The patterns' needles grouped by (translation table, anchors)."""
    groups: dict[tuple[bytes | None, bytes], set[bytes]] = {}
    for p in patterns:
        groups.setdefault((p.table, p.anchors), set()).update(p.needles)
    return [(table, anchors, tuple(sorted(n))) for (table, anchors), n in groups.items()]
