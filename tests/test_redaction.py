"""Secrets in every shape never reach a sink; ordinary telemetry passes untouched."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

import wideevents
from wideevents import DROP, ConfigError, Redaction, event
from wideevents._patterns import VALUE_PATTERNS
from wideevents._redact import Redactor
from wideevents.sinks import JsonLinesSink, MemorySink

from .test_pipeline import emit_in_a_forked_child

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
AWS = "AKIAIOSFODNN7EXAMPLE"
GCP = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SLACK = "xoxb-2178234820-3129829482-abcdefghijklmnop"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq98pQ1xZ3\nqk4uV0mS2e\n"
    "-----END RSA PRIVATE KEY-----"
)
VISA = "4111 1111 1111 1111"
MASTERCARD = "5500-0000-0000-0004"
AMEX = "378282246310005"
PASSWORD = "hunter2-Sup3rS3cret!"
CORE = {
    "timestamp",
    "duration_ms",
    "trace_id",
    "span_id",
    "parent_id",
    "process.pid",
    "host.name",
    "service.name",
    "sample_rate",
    "error",
    "name",
}

# (field name, value, the secret text that must not survive)
CORPUS: list[tuple[str, Any, str]] = [
    ("password", PASSWORD, PASSWORD),
    ("user.password", PASSWORD, PASSWORD),
    ("DB_PASSWD", PASSWORD, PASSWORD),
    ("client_secret", "s3cr3t-value-123", "s3cr3t-value-123"),
    ("refresh_token", "rt-98f7d6c5b4a3", "rt-98f7d6c5b4a3"),
    ("http.request.header.authorization", "Bearer abc.def.ghi-123456", "abc.def.ghi-123456"),
    ("http.request.header.cookie", "sessionid=8f7e6d5c4b3a", "8f7e6d5c4b3a"),
    ("x-api-key", "k-1234567890abcdef", "k-1234567890abcdef"),
    ("aws.access_key", AWS, AWS),
    ("private_key", PEM, "MIIEpAIBAAKCAQEA7bq98pQ1xZ3"),
    ("csrf_token", "f00dbabe", "f00dbabe"),
    ("user.ssn", "078-05-1120", "078-05-1120"),
    ("payment.card_number", "4111111111111111", "4111111111111111"),
    ("cvv", "123", "123"),
    ("iban", "DE89370400440532013000", "DE89370400440532013000"),
    ("jwt", JWT, JWT),
    # Value patterns under innocent keys.
    ("note", f"token was {JWT}", JWT),
    ("header", f"Authorization: Bearer {JWT[:40]}", JWT[:40]),
    ("basic", "Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("env.dump", f"AWS_ACCESS_KEY_ID={AWS}", AWS),
    ("gcp", f"key {GCP} used", GCP),
    ("gh", f"pushed with {GITHUB}", GITHUB),
    ("slack", SLACK, SLACK),
    ("stripe", STRIPE, STRIPE),
    ("blob", f"config:\n{PEM}\nend", "MIIEpAIBAAKCAQEA7bq98pQ1xZ3"),
    ("pay.note", f"charged {VISA} ok", VISA),
    ("pay.note2", f"card {MASTERCARD}", MASTERCARD),
    ("pay.amex", AMEX, AMEX),
    ("url.full", "https://api.example.com/v1/login?user=ada&password=hunter22&x=1", "hunter22"),
    ("url.full2", "https://example.com/cb?code=1&access_token=tok-5f4e3d2c1b", "tok-5f4e3d2c1b"),
    ("db.url", "postgres://app:pa55w0rd-x@db.internal:5432/shop", "pa55w0rd-x"),
    ("log.line", "retrying with api_key=ak-77aa88bb99cc", "ak-77aa88bb99cc"),
    ("db.statement", "UPDATE users SET password = 'hunter2 horse' WHERE id = 7", "hunter2 horse"),
    ("request.text", '{"user": "ada", "password": "pa55-w0rd!"}', "pa55-w0rd!"),
    ("config.line", "api_key: 'ak-99zz88yy'", "ak-99zz88yy"),
    # Nested values: dicts and lists.
    ("request.body", {"user": "ada", "password": PASSWORD}, PASSWORD),
    ("request.headers", {"Authorization": f"Bearer {JWT}", "Accept": "*/*"}, JWT),
    ("items", [{"sku": "A1", "card": {"number": "4111111111111111"}}], "4111111111111111"),
    ("tags", ["ok", f"leak {AWS}"], AWS),
    ("deep", {"a": {"b": {"c": [{"api_key": "zz-secret-zz"}]}}}, "zz-secret-zz"),
    ("bytes", f"raw {AWS}".encode(), AWS),
    ("tuple", ("x", STRIPE), STRIPE),
]


def _emit(fields: dict[str, Any]) -> dict[str, Any]:
    sink = MemorySink()
    wideevents.configure("svc", sinks=[sink])
    with event("op", **fields):
        pass
    wideevents.flush()
    (record,) = sink.events
    return record


@pytest.mark.parametrize(("key", "value", "secret"), CORPUS, ids=[c[0] for c in CORPUS])
def test_secret_never_reaches_the_sink(key: str, value: Any, secret: str) -> None:
    record = _emit({key: value, "route": "/checkout"})
    # Short secrets (a cvv) could occur by chance in random ids or times: look at the fields
    # that carry user data only.
    text = json.dumps({k: v for k, v in record.items() if k not in CORE}, default=str)
    assert secret not in text
    assert key in record  # the field is kept, its secret part replaced
    assert record["meta.redacted"]
    assert all(p == key or p.startswith(key + ".") for p in record["meta.redacted"])
    assert record["route"] == "/checkout"


@pytest.mark.parametrize(("key", "value", "secret"), CORPUS, ids=[c[0] for c in CORPUS])
def test_secret_never_reaches_a_jsonl_file(
    key: str, value: Any, secret: str, tmp_path: Any
) -> None:
    path = tmp_path / "events.jsonl"
    wideevents.configure("svc", sinks=f"jsonl:{path}")
    with event("op", **{key: value}):
        pass
    wideevents.flush()
    data = path.read_bytes()
    assert data.count(b"\n") == 1
    user = {k: v for k, v in json.loads(data).items() if k not in CORE}
    assert secret not in json.dumps(user)


def test_secret_in_exception_message_is_redacted() -> None:
    sink = MemorySink()
    wideevents.configure("svc", sinks=[sink])
    with pytest.raises(PermissionError), event("login"):
        raise PermissionError(f"login failed for ada password: {PASSWORD} token={JWT}")
    wideevents.flush()
    (r,) = sink.events
    assert PASSWORD not in r["error.message"]
    assert JWT not in r["error.message"]
    assert r["error.message"].startswith("login failed for ada password: [REDACTED]")
    assert "error.message" in r["meta.redacted"]


def test_secret_in_event_name_is_redacted() -> None:
    sink = MemorySink()
    wideevents.configure("svc", sinks=[sink])
    with event(f"GET /reset?token={JWT}"):
        pass
    wideevents.flush()
    (r,) = sink.events
    assert JWT not in r["name"]
    assert r["name"].startswith("GET /reset?token=")


def test_replacement_never_contains_the_replaced_text() -> None:
    for _key, value, secret in CORPUS:
        if isinstance(value, str):
            out = Redactor(Redaction()).scrub_text(value)
            if out != value:
                assert secret not in out


ORDINARY = {
    "http.route": "/api/v1/orders/{id}",
    "http.request.method": "POST",
    "url.path": "/api/v1/orders/8812",
    "user.id": "u_8f3a9c2d1e",
    "request.id": "req_6f1c2b8e9d0a4f3b",
    "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
    "author": "ada",
    "authority": "api.example.com",
    "tokens_remaining": 5,  # a key containing "token" is still redacted by key pattern
    "class_name": "OrderService",
    "spinner": "dots",
    "build": "2026.11.3-abc123f",
    "order.id": 1764133345123456789,
    "phone": "+1 415 555 0134",
    "trace.parent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "uuid": "550e8400-e29b-41d4-a716-446655440000",
    "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    "ratio": 0.25,
    "ok": True,
    "none": None,
}


def test_ordinary_fields_pass_untouched() -> None:
    record = _emit(dict(ORDINARY))
    changed = set(record.get("meta.redacted", []))
    assert changed == {"tokens_remaining"}
    for key, value in ORDINARY.items():
        if key not in changed:
            assert record[key] == value, key


def test_uuid_and_long_order_ids_are_not_cards() -> None:
    record = _emit({"order": "4111111111111112", "id": str(uuid.UUID(int=7))})
    assert record["order"] == "4111111111111112"  # fails Luhn: an id, not a card


def test_safe_keys_and_extra_patterns() -> None:
    sink = MemorySink()
    wideevents.configure(
        "svc",
        sinks=[sink],
        redact=Redaction(
            safe_keys=["llm.tokens*"], keys=[r"internal_note"], patterns=[r"EMP-\d{6}"]
        ),
    )
    with event("op", **{"llm.tokens.total": 812, "internal_note": "x", "who": "EMP-123456 did"}):
        pass
    wideevents.flush()
    (r,) = sink.events
    assert r["llm.tokens.total"] == 812
    assert r["internal_note"] == "[REDACTED]"
    assert r["who"] == "[REDACTED:custom] did"


def test_allow_only_mode_drops_everything_else() -> None:
    sink = MemorySink()
    wideevents.configure("svc", sinks=[sink], redact=Redaction(allow_only=["http.*", "user.id"]))
    with event("op", **{"http.route": "/a", "user.id": 7, "user.email": "a@b.c", "note": "hi"}):
        pass
    wideevents.flush()
    (r,) = sink.events
    assert r["http.route"] == "/a"
    assert r["user.id"] == 7
    assert "user.email" not in r
    assert "note" not in r
    assert sorted(r["meta.redacted"]) == ["note", "user.email"]
    assert r["name"] == "op"
    assert r["service.name"] == "svc"
    assert r["host.name"] and r["process.pid"]  # resource fields are never dropped


def test_resource_fields_from_the_app_meet_allow_only_and_hooks_builtins_stay() -> None:
    sink = MemorySink()
    wideevents.configure(
        "svc",
        sinks=[sink],
        fields={"customer.email": "a@b.c", "team": "payments", "region": "eu"},
        redact=Redaction(
            allow_only=["http.*", "team", "region"],
            hooks=[lambda k, v, f: DROP if k == "region" else v],
        ),
    )
    with event("op", **{"http.route": "/a"}):
        pass
    wideevents.flush()
    (r,) = sink.events
    assert "customer.email" not in r and "region" not in r
    assert r["team"] == "payments" and r["service.name"] == "svc" and r["process.pid"]
    assert sorted(r["meta.redacted"]) == ["customer.email", "region"]


def test_a_resource_value_that_cannot_be_redacted_is_replaced_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WIDEEVENTS_RAISE_INTERNAL", "0")  # as in an app: counted, not raised

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    sink = MemorySink()
    wideevents.configure(
        "svc",
        sinks=[sink],
        fields={"odd": Unprintable(), "ok": 1},
        redact=Redaction(hash_keys=["odd"], hash_secret="s" * 16),
    )
    with event("op"):
        pass
    wideevents.flush()
    (r,) = sink.events
    assert r["odd"] == "[REDACTED]" and r["ok"] == 1
    assert r["meta.redacted"] == ["odd"]
    assert wideevents.stats()["redaction_errors"] == 1


def test_meta_redacted_names_resource_paths_once_and_only_where_the_value_came_from() -> None:
    sink = MemorySink()
    bearer = "Bearer abcdefghijklmnopqrstuvwxyz012345"
    wideevents.configure(
        "svc",
        sinks=[sink],
        fields={"cfg": {"token": "abc", "x": 1}, "deploy.note": f"by {bearer}"},
        redact=Redaction(hooks=[lambda k, v, f: DROP if v == "mine" else v]),
    )
    with event("op", cfg={"y": 2}):  # the app's own cfg: nothing of the resource's in it
        pass
    with event("op", **{"deploy.note": "mine"}):  # dropped by the hook: the resource's fills in
        pass
    wideevents.flush()
    first, second = sink.events
    assert first["cfg"] == {"y": 2}
    assert first["meta.redacted"] == ["deploy.note"]
    assert second["deploy.note"] == "by Bearer [REDACTED]"
    assert sorted(second["meta.redacted"]) == ["cfg.token", "deploy.note"]  # once each


def test_a_forked_child_redacts_its_own_pid_like_the_parent(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    wideevents.configure(
        "svc",
        sinks=[JsonLinesSink(path)],
        redact=Redaction(hash_keys=["process.pid"], hash_secret="s" * 16),
    )
    assert emit_in_a_forked_child() == 0
    records = {r["name"]: r for r in map(json.loads, path.read_text().splitlines())}
    parent, child = records["parent"]["process.pid"], records["child"]["process.pid"]
    assert parent.startswith("hmac:") and child.startswith("hmac:") and parent != child
    assert records["child"]["meta.redacted"] == ["process.pid"]


def test_resource_fields_are_redacted_like_the_events_own() -> None:
    sink = MemorySink()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVlLTEyMzQ"
    wideevents.configure(
        "svc", sinks=[sink], fields={"deploy.token": "abc123", "deploy.by": f"ci {jwt}"}
    )
    for _ in range(3):  # past the first sightings, when values are remembered as clean
        with event("op"):
            pass
    wideevents.flush()
    for r in sink.events:
        assert r["deploy.token"] == "[REDACTED]"
        assert jwt not in r["deploy.by"]
        assert sorted(r["meta.redacted"]) == ["deploy.by", "deploy.token"]
        assert r["service.name"] == "svc"


def test_hashing_keeps_values_groupable_not_readable() -> None:
    sink = MemorySink()
    redact = Redaction(hash_keys=["user.email"], hash_secret="k1")
    wideevents.configure("svc", sinks=[sink], redact=redact)
    for email in ("ada@example.com", "ada@example.com", "bob@example.com"):
        with event("op", **{"user.email": email}):
            pass
    wideevents.flush()
    hashed = [r["user.email"] for r in sink.events]
    assert hashed[0] == hashed[1] != hashed[2]
    assert all(h.startswith("hmac:") and "example" not in h for h in hashed)
    # A different secret gives different hashes: they cannot be precomputed without it.
    other = Redactor(Redaction(hash_keys=["user.email"], hash_secret="k2"))
    assert other.hash_value("ada@example.com") != hashed[0]


def test_hash_keys_without_a_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hash_secret"):
        Redaction(hash_keys=["user.email"])


def test_bad_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad redaction pattern"):
        Redaction(patterns=["("])


def test_hooks_transform_drop_and_fail_closed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WIDEEVENTS_RAISE_INTERNAL", "0")

    def mask_email(key: str, value: Any, fields: Any) -> Any:
        if key == "user.email":
            return value.split("@")[0][:1] + "***@" + value.split("@")[1]
        if key == "debug":
            return DROP
        if key == "explode":
            raise RuntimeError("hook bug")
        return value

    sink = MemorySink()
    wideevents.configure("svc", sinks=[sink], redact=Redaction(hooks=[mask_email]))
    with caplog.at_level(logging.WARNING, logger="wideevents"):
        for _ in range(3):
            with event(
                "op", **{"user.email": "ada@example.com", "debug": "x", "explode": 1, "plain": "y"}
            ):
                pass
        wideevents.flush()
    assert len(sink.events) == 3
    for r in sink.events:
        assert r["user.email"] == "a***@example.com"
        assert "debug" not in r
        assert "explode" not in r
        assert r["plain"] == "y"
        assert set(r["meta.redacted"]) == {"user.email", "debug", "explode"}
    assert wideevents.stats()["redaction_hook_errors"] == 3
    assert sum("redaction_hook" in m for m in caplog.messages) == 1  # logged once


def test_redaction_can_be_turned_off_explicitly() -> None:
    sink = MemorySink()
    wideevents.configure("svc", sinks=[sink], redact=False)
    with event("op", password="visible"):
        pass
    wideevents.flush()
    assert sink.events[0]["password"] == "visible"


def test_needles_cover_every_value_pattern() -> None:
    # The prefilter is only safe if every text a pattern matches contains one of its needles.
    examples = {
        "private-key": [PEM],
        "jwt": [JWT],
        "bearer": ["Bearer abcdefgh1234", "BEARER abcdefgh1234"],
        "basic": ["Basic dXNlcjpw"],
        "aws-key": [AWS],
        "gcp-key": [GCP],
        "github-token": [GITHUB, "github_pat_" + "a" * 30],
        "slack-token": [SLACK],
        "stripe-key": [STRIPE],
        "url-password": ["https://u:p@h"],
        "kv": ["password=x", "Token = y"],
        "kv-quoted": ["password='x y'", '{"token": "y"}', "Secret : 'z'"],
        "card": [
            VISA,
            MASTERCARD,
            AMEX,
            "3782 822463 10005",
            "4111111111111111",
            "4111-1111-1111-1111",
            "3782-822463-10005",
        ],
    }
    assert {p.kind for p in VALUE_PATTERNS} == set(examples)
    for kind, texts in examples.items():
        for text in texts:
            matched = [p for p in VALUE_PATTERNS if p.kind == kind and p.regex.search(text)]
            assert matched, (kind, text)
            for p in matched:
                hay = text.lower().encode()  # a lookahead may keep a needle outside the match
                if p.anchors:
                    assert any(a in hay for a in p.anchors), (kind, text)
                if p.table is not None:
                    hay = hay.translate(p.table)
                assert any(n in hay for n in p.needles), (kind, text)


def test_uuids_are_never_mistaken_for_cards() -> None:
    import random

    rng = random.Random(5)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20_000)]
    redactor = Redactor(Redaction())
    batch = [{"request.id": i} for i in ids]
    changed = redactor.redact_batch(batch)
    assert [b["request.id"] for b in batch] == ids
    assert not any(changed)
