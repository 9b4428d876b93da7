"""The ``events`` table: core columns with fixed types, one typed column per user field.

User columns are added when a field first appears, typed from what DuckDB's JSON reader
detects across the whole batch; a type conflict widens the column (BIGINT → DOUBLE →
VARCHAR), never drops a value. Past :data:`MAX_USER_COLUMNS` user columns, new fields go to
the JSON column ``attributes.overflow``.
"""

from __future__ import annotations

from collections.abc import Mapping

EVENTS = "events"
SEGMENTS = "_wideevents_segments"
OVERFLOW = "attributes.overflow"
MAX_USER_COLUMNS = 1000

CORE_COLUMNS: dict[str, str] = {
    "timestamp": "TIMESTAMPTZ",
    "duration_ms": "DOUBLE",
    "name": "VARCHAR",
    "trace_id": "VARCHAR",
    "span_id": "VARCHAR",
    "parent_id": "VARCHAR",
    "error": "BOOLEAN",
    "error.type": "VARCHAR",
    "error.message": "VARCHAR",
    "sample_rate": "BIGINT",
    "service.name": "VARCHAR",
    "service.version": "VARCHAR",
    "deployment.environment.name": "VARCHAR",
    "host.name": "VARCHAR",
    "process.pid": "BIGINT",
    "meta.redacted": "JSON",
    OVERFLOW: "JSON",
}

STORE_TYPES = ("BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR", "TIMESTAMPTZ", "JSON")


def quote_ident(name: str) -> str:
    """A DuckDB identifier for any text: ``x"; DROP TABLE events; --`` stays one name."""
    if "\x00" in name:
        raise ValueError("a field name cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A DuckDB string literal for any text (for the few places that take no parameters)."""
    if "\x00" in text:
        raise ValueError("text cannot contain NUL")
    return "'" + text.replace("'", "''") + "'"


def store_type(detected: str) -> str | None:
    """Our column type for a type DuckDB's JSON reader detected; None for all-null fields."""
    t = detected.upper()
    if t == '"NULL"' or t == "NULL":
        return None
    if t in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UINTEGER", "USMALLINT", "UTINYINT"):
        return "BIGINT"
    if t in ("UBIGINT", "HUGEINT", "UHUGEINT"):
        return "VARCHAR"  # wider than BIGINT: kept exact as text
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return "DOUBLE"
    if t == "BOOLEAN":
        return "BOOLEAN"
    if t.startswith("TIMESTAMP"):
        return "TIMESTAMPTZ"
    if t == "JSON":
        return "VARCHAR"  # mixed scalar types across the batch
    if t.startswith(("STRUCT", "MAP")) or t.endswith("]"):
        return "JSON"
    return "VARCHAR"  # VARCHAR, DATE, TIME, UUID, anything else: as text


# The JSON a Python value becomes (orjson, see the pipeline) and the column that holds it.
_PYTHON_TYPES: dict[str, str | None] = {
    "NoneType": None,
    "bool": "BOOLEAN",
    "int": "BIGINT",
    "float": "DOUBLE",
    "str": "VARCHAR",
    "dict": "JSON",
    "list": "JSON",
    "tuple": "JSON",
    "set": "JSON",
    "frozenset": "JSON",
    "datetime.datetime": "TIMESTAMPTZ",
    "datetime.date": "VARCHAR",
    "datetime.time": "VARCHAR",
    "uuid.UUID": "VARCHAR",
    "decimal.Decimal": "VARCHAR",
    "bytes": "VARCHAR",
}


def types_from_python(names: list[str]) -> tuple[bool, str | None]:
    """(known, store type) for the Python types one field had in a segment."""
    result: str | None = None
    for name in names:
        if name not in _PYTHON_TYPES:
            return False, None  # an object orjson may render as anything: let DuckDB look
        result = widen(result, _PYTHON_TYPES[name])
    return True, result


def widen(old: str | None, new: str | None) -> str | None:
    """The narrowest type that holds values of both types."""
    if old is None:
        return new
    if new is None or old == new:
        return old
    if {old, new} == {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    return "VARCHAR"


def plan_columns(
    existing: Mapping[str, str], detected: Mapping[str, str | None]
) -> tuple[dict[str, str], dict[str, str], dict[str, str], list[str]]:
    """What a batch needs: (read types, columns to add, columns to widen, overflow fields).

    *existing* maps the table's column names to types; *detected* maps the batch's field names
    to their store types. DuckDB matches names case-insensitively, so existing columns are
    looked up that way.
    """
    by_lower = {name.lower(): name for name in existing}
    user_columns = sum(1 for n in existing if n not in CORE_COLUMNS)
    read: dict[str, str] = {}
    add: dict[str, str] = {}
    alter: dict[str, str] = {}
    overflow: list[str] = []
    seen_lower: set[str] = set()
    for field, typ in detected.items():
        low = field.lower()
        if low in seen_lower:  # two fields differing only in case: one column can't hold both
            overflow.append(field)
            continue
        seen_lower.add(low)
        column = by_lower.get(low)
        if column is not None and column != field:
            overflow.append(field)
            continue
        if column is not None:
            old = existing[column]
            if column in CORE_COLUMNS:
                read[field] = old
                continue
            wide = widen(old, typ) or old
            read[field] = wide
            if wide != old:
                alter[field] = wide
        elif field == OVERFLOW or typ is None:
            continue  # all null so far: the column comes with the first value
        elif user_columns < MAX_USER_COLUMNS:
            read[field] = typ
            add[field] = typ
            user_columns += 1
        else:
            overflow.append(field)
    return read, add, alter, overflow
