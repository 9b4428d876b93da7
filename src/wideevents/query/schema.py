"""The store's columns as the query layer sees them: resolution, suggestions, coercion."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb

from ..store.ingest import table_columns
from .parse import QueryError

NUMERIC = ("BIGINT", "DOUBLE")


class UnknownField(QueryError):
    pass


@dataclass
class Schema:
    columns: dict[str, str]  # name → BIGINT | DOUBLE | BOOLEAN | VARCHAR | TIMESTAMPTZ | JSON

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection) -> Schema:
        return cls(table_columns(con))

    def resolve(self, name: str) -> str:
        """The column for a field name as typed (exact, else case-insensitive)."""
        if name in self.columns:
            return name
        lower = {c.lower(): c for c in self.columns}
        if name.lower() in lower:
            return lower[name.lower()]
        close = difflib.get_close_matches(name, list(self.columns), n=3, cutoff=0.6)
        if not close:
            close = [c for c in self.columns if name.lower() in c.lower()][:3]
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownField(f"unknown field {name!r}{hint} (`wideevents fields` lists them)")

    def type_of(self, column: str) -> str:
        return self.columns[column]

    def is_numeric(self, column: str) -> bool:
        return self.columns[column] in NUMERIC


def coerce(value: str, typ: str, field: str) -> Any:
    """A filter value typed as the column: ``500`` for BIGINT, ``true`` for BOOLEAN …"""
    text = value.strip()
    try:
        if typ == "BIGINT":
            try:
                return int(text)
            except ValueError:
                return float(text)
        if typ == "DOUBLE":
            return float(text)
        if typ == "BOOLEAN":
            low = text.lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if typ == "TIMESTAMPTZ":
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except ValueError:
        kind = {
            "BIGINT": "a number",
            "DOUBLE": "a number",
            "BOOLEAN": "true or false",
            "TIMESTAMPTZ": "an ISO timestamp",
        }[typ]
        raise QueryError(f"{field!r} holds {typ}: {value!r} is not {kind}") from None
    return value
