"""Redaction: nothing that looks like a secret leaves the process.

Runs on the pipeline's worker over a batch of events, before any sink sees them. The costly
part of naive redaction is a Python loop with a regex per field; here the decisions are
cached per key, values already seen clean are skipped through one set lookup each, and the
few new strings of a batch are joined and searched for the patterns' needles at C speed.
Only the texts the needles flag meet the regexes (see ``_patterns``).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import fnmatch
import hashlib
import hmac
import re
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any, Final

from . import _internal
from ._exceptions import ConfigError
from ._patterns import (
    KEY_PATTERN,
    MESSAGE_PATTERNS,
    VALUE_PATTERNS,
    ValuePattern,
    needle_groups,
)


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "wideevents.DROP"


DROP: Final = _Drop()
"""Return this from a redaction hook to remove the field from the event."""

Hook = Callable[[str, Any, Mapping[str, Any]], Any]

REDACTED: Final = "[REDACTED]"

# What a key asks for; cached per key.
_PASS, _REDACT, _HASH, _DROP_KEY = 0, 1, 2, 3

_CACHE_LIMIT = 1 << 16
# Values whose text cannot carry a secret: never scanned.
_INERT: Final = frozenset(
    {int, float, bool, type(None), _dt.datetime, _dt.date, _dt.time, uuid.UUID, decimal.Decimal}
)


class Redaction:
    """How events are redacted. ``configure(redact=Redaction(...))``; on by default.

    * ``keys``: extra key patterns (regexes, matched case-insensitively anywhere in the key).
    * ``patterns``: extra value regexes; a match is replaced by ``[REDACTED:custom]``.
    * ``safe_keys``: keys (or globs such as ``"http.route"``, ``"llm.*"``) never redacted by
      key pattern; their values are still scanned.
    * ``allow_only``: when given, only these keys (or globs) leave the process; the rest are
      dropped and listed in ``meta.redacted``.
    * ``hash_keys`` + ``hash_secret``: these keys' values become ``hmac:<hex>``
      (HMAC-SHA256), groupable but not readable.
    * ``hooks``: ``hook(key, value, fields) -> value | DROP``, run on every top-level field.
      A hook that raises drops the field (fail closed); the failure is counted.
    * ``defaults``: the built-in key and value patterns (turn off only with care).
    """

    def __init__(
        self,
        *,
        keys: Iterable[str] = (),
        patterns: Iterable[str] = (),
        safe_keys: Iterable[str] = (),
        allow_only: Iterable[str] | None = None,
        hash_keys: Iterable[str] = (),
        hash_secret: str | bytes | None = None,
        hooks: Iterable[Hook] = (),
        defaults: bool = True,
    ) -> None:
        self.keys = tuple(keys)
        self.patterns = tuple(patterns)
        self.safe_keys = tuple(safe_keys)
        self.allow_only = None if allow_only is None else tuple(allow_only)
        self.hash_keys = tuple(hash_keys)
        self.hash_secret = hash_secret.encode() if isinstance(hash_secret, str) else hash_secret
        self.hooks = tuple(hooks)
        self.defaults = defaults
        if self.hash_keys and not self.hash_secret:
            raise ConfigError(
                "hash_keys needs hash_secret (or WIDEEVENTS_HASH_SECRET): without a secret "
                "a hash of a low-entropy value (an email) is easy to reverse"
            )
        for rx in (*self.keys, *self.patterns):
            try:
                re.compile(rx)
            except re.error as exc:
                raise ConfigError(f"bad redaction pattern {rx!r}: {exc}") from None


def _globber(patterns: Sequence[str]) -> Callable[[str], bool]:
    exact = {p for p in patterns if not any(c in p for c in "*?[")}
    globs = [re.compile(fnmatch.translate(p)) for p in patterns if p not in exact]

    def match(key: str) -> bool:
        return key in exact or any(g.match(key) for g in globs)

    return match


class Redactor:
    """Applies a :class:`Redaction` to batches of events, under the pipeline's lock (on its
    worker, or on an app thread right after a response when no hook is set)."""

    def __init__(self, config: Redaction) -> None:
        self.config = config
        key_parts = ([KEY_PATTERN] if config.defaults else []) + list(config.keys)
        self._key_re = re.compile("|".join(f"(?:{p})" for p in key_parts)) if key_parts else None
        self._safe = _globber(config.safe_keys)
        self._allowed = None if config.allow_only is None else _globber(config.allow_only)
        self._hashed = _globber(config.hash_keys)
        self._secret = config.hash_secret or b""
        self._hooks = config.hooks
        extra = tuple(ValuePattern("custom", rx, (), ascii_only=False) for rx in config.patterns)
        self._patterns = (VALUE_PATTERNS if config.defaults else ()) + extra
        self._message_patterns = (MESSAGE_PATTERNS if config.defaults else ()) + extra
        # Without needles for the custom patterns every new string meets the regexes.
        self._prefilter = config.defaults and not extra
        self._needles = needle_groups(VALUE_PATTERNS)
        self._key_action: dict[str, int] = {}
        self._plain_keys: set[str] = set()  # keys that need no action at the top level
        # Values known to be clean, and strings seen clean once (admitted to _clean on their
        # second sighting, so unique ids do not crowd out the values that repeat).
        self._clean: set[Any] = {REDACTED, None, True, False}
        self._seen_once: set[Any] = set()
        self._hash_cache: dict[str, str] = {}

    @property
    def has_hooks(self) -> bool:
        return bool(self._hooks)

    # -- per key -------------------------------------------------------------------------

    def _action(self, key: str) -> int:
        action = self._key_action.get(key)
        if action is None:
            if self._allowed is not None and not self._allowed(key):
                action = _DROP_KEY
            else:
                action = self._action_unscoped(key)
            if len(self._key_action) >= _CACHE_LIMIT:
                self._key_action.clear()
            self._key_action[key] = action
        return action

    def _nested_action(self, key: str) -> int:
        # Inside a dict value only the key patterns and hashing apply; allow-only is top level.
        action = self._action(key) if self._allowed is None else self._action_unscoped(key)
        return _REDACT if action == _DROP_KEY else action

    def _action_unscoped(self, key: str) -> int:
        """What the key asks for, allow-only aside: hashing, then the key patterns."""
        if self._hashed(key):
            return _HASH
        if self._key_re is not None and not self._safe(key) and self._key_re.search(key.lower()):
            return _REDACT
        return _PASS

    def hash_value(self, value: Any) -> str:
        text = value if isinstance(value, str) else str(value)
        out = self._hash_cache.get(text)
        if out is None:
            digest = hmac.new(self._secret, text.encode("utf-8", "surrogatepass"), hashlib.sha256)
            out = "hmac:" + digest.hexdigest()[:32]
            if len(self._hash_cache) >= 4096:
                self._hash_cache.clear()
            self._hash_cache[text] = out
        return out

    # -- per text ------------------------------------------------------------------------

    def scrub_text(self, text: str, *, message: bool = False) -> str:
        """The text with every secret-shaped part replaced; the same object when clean."""
        patterns = self._message_patterns if message else self._patterns
        low = text.lower().encode("utf-8", "surrogatepass")
        for p in patterns:
            if p.needles:
                if p.anchors and not any(a in low for a in p.anchors):
                    continue
                hay = low if p.table is None else low.translate(p.table)
                if not any(n in hay for n in p.needles):
                    continue
            text = p.regex.sub(p.replace, text)
        return text

    def suspects(self, texts: list[str]) -> set[int]:
        """Indices of *texts* that may hold a secret (a superset; usually empty)."""
        if not self._prefilter:
            return set(range(len(texts)))
        # Joined without a separator: a needle spanning two texts only flags one more text.
        blob = "".join(texts)
        if blob.isascii():  # lowercasing keeps every offset
            data = blob.lower().encode()
            ends = list(accumulate(map(len, texts)))
        else:  # lowercasing may change a text's length (K, İ): offsets from the lowered texts
            lowered = [t.lower().encode("utf-8", "surrogatepass") for t in texts]
            data = b"".join(lowered)
            ends = list(accumulate(map(len, lowered)))
        hits: set[int] = set()
        last = len(ends) - 1
        translated: dict[bytes, bytes] = {}
        for table, anchors, needles in self._needles:
            if anchors and not any(data.find(a) != -1 for a in anchors):
                continue
            if table is None:
                find = data.find
            else:
                hay = translated.get(table)
                if hay is None:
                    hay = translated[table] = data.translate(table)
                find = hay.find
            for needle in needles:
                at = find(needle)
                while at != -1:
                    i = bisect_right(ends, at)
                    hits.add(i)
                    at = find(needle, ends[i]) if i < last else -1
        return hits

    # -- per event -----------------------------------------------------------------------

    def redact_resource(
        self, fields: dict[str, Any], builtin: Iterable[str] = ()
    ) -> dict[str, list[str]]:
        """Redact the resource fields in place, once; return the changed paths per key.

        Every key meets the key patterns, hashing and the value patterns. The app's own
        resource fields (``configure(fields=…)``) also meet allow-only and the hooks (with the
        resource as ``fields``); the *builtin* ones (``service.name`` …) are never dropped. A
        value that cannot be redacted (its ``str()`` raises) is replaced, never kept.
        """
        keep = frozenset(builtin)
        changed: dict[str, list[str]] = {}
        for key in list(fields):
            paths: list[str] = []
            try:
                own = key not in keep
                action = self._action_unscoped(key)
                if own and action == _PASS and self._allowed is not None and not self._allowed(key):
                    action = _DROP_KEY
                if self._apply_key(fields, key, action, hooks=own):
                    paths.append(key)
                if action == _PASS and key in fields:  # what a hook left is scanned too
                    fields[key] = self._scrub(fields[key], key, paths)
            except Exception as exc:  # fail closed: the value never leaves
                _internal.report("redaction", exc, reraise=False)
                fields[key] = REDACTED
                paths = [key]
            if paths:
                changed[key] = list(dict.fromkeys(paths))
        return changed

    def redact_batch(self, batch: list[dict[str, Any]]) -> list[list[str] | None]:
        """Redact each event's fields in place; return the changed paths per event."""
        changed: list[list[str] | None] = [None] * len(batch)
        plain = self._plain_keys
        clean = self._clean
        texts: list[str] = []
        owners: list[int] = []
        ints: list[int] = []  # ints are never secret; remembered so repeats skip the loop
        deep: list[int] = []
        for i, fields in enumerate(batch):
            if self._hooks or not plain.issuperset(fields):
                changed[i] = self._apply_keys(fields)
            try:
                new = [v for v in fields.values() if v not in clean]
            except TypeError:  # an unhashable value: a dict or a list
                deep.append(i)
                continue
            for v in new:
                cls = v.__class__
                if cls is str:
                    texts.append(v)
                    owners.append(i)
                elif cls is int:
                    ints.append(v)
                elif cls not in _INERT:
                    deep.append(i)
                    break
        flagged = self.suspects(texts) if texts else set()
        suspect = {texts[t] for t in flagged}
        if flagged:
            for i in sorted({owners[t] for t in flagged}):
                paths = self._scrub_fields(batch[i], suspect)
                if paths:
                    changed[i] = (changed[i] or []) + paths
        for i in deep:
            paths = self._scrub_fields(batch[i], None)
            if paths:
                changed[i] = (changed[i] or []) + paths
        self._remember(texts, suspect)
        self._remember(ints, suspect)
        return changed

    def _remember(self, texts: list[Any], suspect: set[str]) -> None:
        clean, once = self._clean, self._seen_once
        if len(clean) > _CACHE_LIMIT:
            clean.clear()
            clean.update((REDACTED, None, True, False))
        if len(once) > _CACHE_LIMIT:
            once.clear()
        for t in texts:
            if t in once:
                if t not in suspect:
                    clean.add(t)
            elif t.__class__ is int or len(t) <= 256:
                once.add(t)

    def _apply_keys(self, fields: dict[str, Any]) -> list[str] | None:
        paths: list[str] | None = None
        for key in list(fields):
            if self._apply_key(fields, key, self._action(key)):
                paths = (paths or []) + [key]
        if not self._hooks:
            if len(self._plain_keys) > _CACHE_LIMIT:
                self._plain_keys.clear()
            self._plain_keys.update(k for k in fields if self._key_action.get(k) == _PASS)
        return paths

    def _apply_key(
        self, fields: dict[str, Any], key: str, action: int, *, hooks: bool = True
    ) -> bool:
        """Carry out *action* on ``fields[key]`` (the hooks, for a key that asks for nothing);
        True when the field changed or went."""
        if action == _PASS:
            if not (hooks and self._hooks):
                return False
            value = self._run_hooks(key, fields[key], fields)
            if value is fields[key]:
                return False
            if value is DROP:
                del fields[key]
            else:
                fields[key] = value
        elif action == _DROP_KEY:
            del fields[key]
        elif action == _HASH:
            fields[key] = self.hash_value(fields[key])
        else:
            fields[key] = REDACTED
        return True

    def _run_hooks(self, key: str, value: Any, fields: Mapping[str, Any]) -> Any:
        for hook in self._hooks:
            try:
                value = hook(key, value, fields)
            except Exception as exc:
                _internal.report("redaction_hook", exc, reraise=False)
                return DROP
            if value is DROP:
                return DROP
        return value

    def _scrub_fields(self, fields: dict[str, Any], only: set[str] | None) -> list[str]:
        """Scan the event's values; with *only*, just the strings the prefilter flagged."""
        paths: list[str] = []
        for key, value in list(fields.items()):
            if self._key_action.get(key, _PASS) != _PASS:
                continue  # already replaced by its key's action
            if only is not None and (value.__class__ is not str or value not in only):
                continue
            new = self._scrub(value, key, paths)
            if new is not value:
                fields[key] = new
        return paths

    def _scrub(self, value: Any, path: str, paths: list[str]) -> Any:
        cls = value.__class__
        if cls is str:
            if value in self._clean:
                return value
            out = self.scrub_text(value)
            if out != value:
                paths.append(path)
                return out
            return value
        if cls in _INERT:
            return value
        if isinstance(value, Mapping):
            changed = False
            result: dict[str, Any] = {}
            for k, v in value.items():
                k = str(k)
                sub = f"{path}.{k}"
                action = self._nested_action(k)
                if action == _REDACT:
                    result[k] = REDACTED
                    paths.append(sub)
                    changed = True
                elif action == _HASH:
                    result[k] = self.hash_value(v)
                    paths.append(sub)
                    changed = True
                else:
                    result[k] = self._scrub(v, sub, paths)
                    changed = changed or result[k] is not v
            return result if changed else value
        if isinstance(value, (list, tuple, set, frozenset)):
            items = [self._scrub(v, f"{path}.{n}", paths) for n, v in enumerate(value)]
            same = isinstance(value, list) and all(
                a is b for a, b in zip(items, value, strict=True)
            )
            return value if same else items
        # Anything else is stored as its text, so its text is what gets scanned.
        text = _to_text(value)
        out = self.scrub_text(text)
        if out != text:
            paths.append(path)
        return out


def _to_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
