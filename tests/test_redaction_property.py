"""Property: a secret planted anywhere in an event never appears in any sink's bytes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import wideevents
from wideevents import event
from wideevents.sinks import JsonLinesSink, MemorySink

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPPER_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
B64URL = ALNUM + "-_"

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
noise_text = st.lists(words, max_size=6).map(" ".join)
scalars = st.one_of(
    noise_text, st.integers(-(10**6), 10**6), st.floats(allow_nan=False), st.booleans(), st.none()
)
plain_keys = st.sampled_from(
    ["route", "user.id", "region", "build", "db.calls", "note", "message", "payload", "items"]
)


def luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, str]:
    """(text to plant, the secret part that must not leave)."""
    kind = draw(
        st.sampled_from(["jwt", "aws", "card", "bearer", "pem", "url", "kv", "github", "stripe"])
    )
    token = draw(st.text(alphabet=ALNUM, min_size=20, max_size=40))
    if kind == "jwt":
        header = base64.urlsafe_b64encode(b'{"alg":"HS256"}').decode().rstrip("=")
        body = draw(st.text(alphabet=B64URL, min_size=10, max_size=60))
        sig = draw(st.text(alphabet=B64URL, min_size=10, max_size=43))
        value = f"{header}.{body}.{sig}"
        return value, value
    if kind == "aws":
        value = draw(st.sampled_from(["AKIA", "ASIA"])) + draw(
            st.text(alphabet=UPPER_DIGITS, min_size=16, max_size=16)
        )
        return value, value
    if kind == "card":
        prefix = draw(st.sampled_from(["4", "51", "55", "37", "6011"]))
        length = 15 if prefix == "37" else 16
        rest = draw(
            st.text(
                alphabet="0123456789",
                min_size=length - 1 - len(prefix),
                max_size=length - 1 - len(prefix),
            )
        )
        number = luhn_complete(prefix + rest)
        sep = draw(st.sampled_from(["", " ", "-"]))
        grouped = sep.join(number[i : i + 4] for i in range(0, len(number), 4)) if sep else number
        return grouped, grouped
    if kind == "bearer":
        scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER"]))
        return f"{scheme} {token}", token
    if kind == "pem":
        body = base64.b64encode(token.encode() * 3).decode()
        return f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----", body
    if kind == "url":
        param = draw(st.sampled_from(["token", "access_token", "password", "api_key", "sid"]))
        return f"https://h.example/cb?x=1&{param}={token}&y=2", token
    if kind == "kv":
        key = draw(st.sampled_from(["password", "secret", "api-key", "session_id", "auth"]))
        return f"{key}={token}", token
    if kind == "github":
        value = "ghp_" + draw(st.text(alphabet=ALNUM, min_size=36, max_size=36))
        return value, value
    value = "sk_live_" + token
    return value, value


class Shown:
    """An object of the app's own whose text is what gets stored."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


@st.composite
def planted_events(draw: st.DrawFn) -> tuple[dict[str, Any], str, str | None]:
    fields = draw(st.dictionaries(plain_keys, scalars, max_size=8))
    text, secret = draw(secrets())
    before, after = draw(noise_text), draw(noise_text)
    where = draw(st.sampled_from(["value", "inside", "dict", "list", "key", "object", "message"]))
    message = None
    if where == "value":
        fields[draw(plain_keys)] = text
    elif where == "inside":
        fields[draw(plain_keys)] = f"{before} {text} {after}"
    elif where == "dict":
        fields["payload"] = {"meta": {"k": [1, f"{before} {text}"]}, "ok": True}
    elif where == "list":
        fields["items"] = [before, {"v": text}, after]
    elif where == "key":
        key = draw(st.sampled_from(["password", "user.api_key", "session", "x-auth-token"]))
        fields[key] = f"{before}{secret}{after}"
    elif where == "object":  # stored as its text
        fields[draw(plain_keys)] = Shown(f"{before} {text} {after}")
    else:
        message = f"{before} failed with {text} {after}"
    rendered = json.dumps(fields, default=str)
    assume(secret not in rendered.replace(text, "") if where != "key" else True)
    return fields, secret, message


def emit(fields: dict[str, Any], message: str | None) -> None:
    """One "op" event with *fields*, ended by a ValueError(*message*) when there is one."""
    try:
        with event("op", **fields):
            if message is not None:
                raise ValueError(message)
    except ValueError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planted_events())
def test_planted_secret_never_leaves(tmp_path_factory: Any, case: Any) -> None:
    fields, secret, message = case
    path: Path = tmp_path_factory.mktemp("p") / "events.jsonl"
    memory = MemorySink()
    wideevents.configure("svc", sinks=[memory, JsonLinesSink(path)])
    emit(fields, message)
    wideevents.flush()
    data = path.read_bytes()
    assert data.count(b"\n") == 1
    assert secret.encode() not in data
    assert secret not in json.dumps(memory.events, default=str)
    record = memory.events[0]
    assert record.get("meta.redacted")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(planted_events(), min_size=2, max_size=6), st.integers(0, 20))
def test_planted_secrets_never_leave_a_batch(
    tmp_path_factory: Any, cases: list[Any], clean_events: int
) -> None:
    """Several events redacted together, among clean ones: each secret caught in its event."""
    path: Path = tmp_path_factory.mktemp("p") / "events.jsonl"
    # The first case's fields also ride on every event as resource fields.
    wideevents.configure("svc", sinks=[JsonLinesSink(path)], fields={"deploy": cases[0][0]})
    for n in range(clean_events):
        with event("clean", n=n, route="/a", ok=True):
            pass
    for fields, _, message in cases:
        emit(fields, message)
    wideevents.flush()
    data = path.read_bytes()
    assert data.count(b"\n") == clean_events + len(cases)
    for _, secret, _ in cases:
        assert secret.encode() not in data
    records = [json.loads(line) for line in data.splitlines()]
    assert all(r.get("meta.redacted") for r in records if r["name"] == "op")
    if cases[0][2] is not None:  # planted in an exception message: the resource is clean
        assert not any(r.get("meta.redacted") for r in records if r["name"] == "clean")


TRICKY = ["\u212a", "\u0130", "é", "\u017f", "ẞ", "Ω", "\u2126", " ", "-", "=", "@", ".", "_"]
fragments = st.sampled_from(
    [
        "Bearer ",
        "bearer ",
        "Basic ",
        "eyJhbGciOi",
        ".eyJzdWIi",
        ".sig_Value-123",
        "AKIA",
        "ASIA",
        "AIza",
        "ghp_",
        "github_pat_",
        "xoxb-",
        "sk_live_",
        "-----BEGIN PRIVATE KEY-----",
        "password=",
        "token=",
        "https://u:",
        "@host",
        "4111 1111 1111 1111",
        "4111111111111111",
        "3782-822463-10005",
        "ABCDEFGHIJKLMNOP",
        "abcdef0123456789",
        *TRICKY,
    ]
)
texts_st = st.lists(
    st.lists(fragments | st.text(max_size=6), max_size=8).map("".join), min_size=1, max_size=12
)


@settings(max_examples=400, deadline=None)
@given(texts_st)
def test_the_prefilter_flags_every_text_a_pattern_would_change(texts: list[str]) -> None:
    from wideevents._patterns import VALUE_PATTERNS
    from wideevents._redact import Redaction, Redactor

    def unfiltered(text: str) -> str:
        for p in VALUE_PATTERNS:
            text = p.regex.sub(p.replace, text)
        return text

    flagged = Redactor(Redaction()).suspects(texts)
    must = {i for i, t in enumerate(texts) if unfiltered(t) != t}
    assert must <= flagged, [texts[i] for i in must - flagged]
