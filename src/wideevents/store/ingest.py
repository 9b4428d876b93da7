"""The ingester: sealed spool segments into the ``events`` table, exactly once.

One batch of segments is one transaction: add or widen columns, ``INSERT … BY NAME`` from
DuckDB's JSON reader (told every column's type, so late keys and naive datetimes are read
right), and record the segment names in ``_wideevents_segments``. Segment files are deleted
only after the commit; a segment whose name is already recorded is deleted without being read
again. A segment the reader cannot parse is renamed ``*.bad`` (rename it back to ``*.jsonl``
to retry) and reported, never retried in a loop; any other failure (disk full, out of
memory) stops the run and leaves the spool untouched. ``python -m wideevents.store.ingest
--db PATH`` runs it once; the DuckDB sink starts ``wideevents.store.background`` instead.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import duckdb
import orjson

from .paths import StorePaths, private_umask
from .schema import (
    CORE_COLUMNS,
    EVENTS,
    OVERFLOW,
    SEGMENTS,
    plan_columns,
    quote_ident,
    quote_literal,
    store_type,
    types_from_python,
)
from .spool import OPEN_SUFFIX, SEALED_SUFFIX, TYPES_SUFFIX

# What a segment's own content can cause; only these set a segment aside.
CONTENT_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException)
BATCH_FILES = 512
REWRITTEN_SUFFIX = ".rewritten"  # a segment's copy with its unreadable fields moved
_NEW_PREFIX = ".new-"  # a store being created, before it is linked into place
BATCH_BYTES = 256 << 20
NEWBORN_SECONDS = 60.0  # an empty, unlocked open segment younger than this may be in creation


@dataclass
class IngestResult:
    rows: int = 0
    segments: int = 0
    bad: list[str] = field(default_factory=list)


def connect(
    paths: StorePaths, *, read_only: bool = False, sandboxed: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open the store (creating it owner-only); the caller holds the store lock.

    ``sandboxed``: no access to other files or the network (for SQL typed by a person).
    """
    db = paths.db
    if not db.exists():
        if read_only:
            raise FileNotFoundError(f"no store at {db}: emit some events or run `wideevents demo`")
        _create(paths)
    config: dict[str, str | bool | int | float | list[str]] = (
        {"enable_external_access": False} if sandboxed else {}
    )
    with private_umask():
        con = duckdb.connect(str(db), read_only=read_only, config=config)
    return con


def _create(paths: StorePaths) -> None:
    # Built under a private name in the 0700 spool folder, then linked into place: the file is
    # never visible with looser permissions, and two creators cannot clobber each other.
    spool = paths.ensure_spool()
    tmp = spool / f"{_NEW_PREFIX}{os.getpid()}-{time.time_ns()}.duckdb"
    with private_umask():
        con = duckdb.connect(str(tmp))
        try:
            ensure_tables(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, paths.db)
    except FileExistsError:
        pass
    finally:
        for leftover in (tmp, Path(str(tmp) + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    columns = ", ".join(f"{quote_ident(n)} {t}" for n, t in CORE_COLUMNS.items())
    con.execute(f"CREATE TABLE IF NOT EXISTS {EVENTS} ({columns})")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {SEGMENTS} "
        "(name VARCHAR PRIMARY KEY, rows BIGINT, ingested_at TIMESTAMPTZ)"
    )


def table_columns(con: duckdb.DuckDBPyConnection, table: str = EVENTS) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return {
        name: ("JSON" if typ == "JSON" else typ.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"))
        for name, typ in rows
    }


def claim_abandoned(spool: Path) -> int:
    """Seal the open segments of writers that died (SIGKILL), cut back to their last whole line.

    A writer holds an exclusive ``flock`` on its open segment for as long as it lives (the
    kernel drops it when the process dies, however it dies), so a segment we can lock has
    no writer left; one we cannot is skipped, however long its writer has been quiet. An
    empty one younger than :data:`NEWBORN_SECONDS` is skipped too: its writer may be
    between creating it and locking it. One that cannot be claimed (an I/O error) is left
    for a later run and said on stderr; the sealed segments are still ingested.
    """
    claimed = 0
    now = time.time()
    for entry in os.scandir(spool):
        if not entry.name.endswith(OPEN_SUFFIX):
            continue
        try:
            fd = os.open(entry.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            with os.fdopen(os.dup(fd), "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                if not size and now - os.fstat(fd).st_mtime < NEWBORN_SECONDS:
                    continue  # perhaps not locked yet: a writer's segment being created
                keep = _last_line_end(f, size)
                if keep != size:
                    f.truncate(keep)
            sealed = entry.path[: -len(OPEN_SUFFIX)] + SEALED_SUFFIX
            if keep:
                os.rename(entry.path, sealed)
            else:
                os.unlink(entry.path)
            claimed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            print(f"wideevents: could not claim {entry.path}: {exc}", file=sys.stderr)
            continue
        finally:
            os.close(fd)
    return claimed


def _last_line_end(f: BinaryIO, size: int) -> int:
    pos = size
    while pos > 0:
        step = min(65536, pos)
        f.seek(pos - step)
        chunk = f.read(step)
        nl = chunk.rfind(b"\n")
        if nl != -1:
            return pos - step + nl + 1
        pos -= step
    return 0


def sealed_segments(spool: Path) -> list[Path]:
    found = []
    for entry in os.scandir(spool):
        if entry.name.endswith(SEALED_SUFFIX) and not entry.name.startswith("."):
            found.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
    return [p for _, _, p in sorted(found)]


def _batches(files: list[Path]) -> Iterator[list[Path]]:
    batch: list[Path] = []
    size = 0
    for f in files:
        try:
            n = f.stat().st_size
        except FileNotFoundError:
            continue
        if batch and (len(batch) >= BATCH_FILES or size + n > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(f)
        size += n
    if batch:
        yield batch


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join(quote_literal(str(f)) for f in files) + "]"


def _detect(con: duckdb.DuckDBPyConnection, files: list[Path]) -> dict[str, str | None]:
    source = (
        f"read_ndjson({_file_list(files)}, sample_size=-1, union_by_name=true, maximum_depth=2)"
    )
    rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    types = {name: store_type(typ) for name, typ, *_ in rows}
    # The reader calls integers HUGEINT as soon as one is negative: BIGINT when all fit.
    wide = [name for name, typ, *_ in rows if typ.upper() in ("HUGEINT", "UBIGINT")]
    if wide:
        bounds = ", ".join(f"min({quote_ident(n)}), max({quote_ident(n)})" for n in wide)
        row = con.execute(f"SELECT {bounds} FROM {source}").fetchone() or ()
        for i, name in enumerate(wide):
            lo, hi = row[2 * i], row[2 * i + 1]
            if lo is not None and lo >= -(2**63) and hi < 2**63:
                types[name] = "BIGINT"
    return types


def _types_path(segment: Path) -> Path:
    return segment.with_name(segment.name[: -len(SEALED_SUFFIX)] + TYPES_SUFFIX)


def _sidecar_types(files: list[Path]) -> dict[str, str | None] | None:
    """Each field's store type from the writers' sidecars; None when one is missing or odd."""
    merged: dict[str, list[str]] = {}
    for f in files:
        try:
            data = orjson.loads(_types_path(f).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        for key, names in data.items():
            merged.setdefault(key, []).extend(names)
    out: dict[str, str | None] = {}
    for key, names in merged.items():
        known, typ = types_from_python(names)
        if not known:
            return None
        out[key] = typ
    return out


def _remove(segment: Path) -> None:
    # The sidecar first: a kill in between then leaves a segment the next run finds recorded
    # (and deletes unread), never a sidecar with no segment that nothing would delete.
    for p in (_types_path(segment), segment):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _ingest_batch(con: duckdb.DuckDBPyConnection, files: list[Path]) -> int:
    """Ingest with the sidecars' types; if the data disagrees, again with DuckDB's detection."""
    types = _sidecar_types(files)
    if types is not None:
        try:
            return _ingest_typed(con, files, types)
        except CONTENT_ERRORS:
            pass  # the data disagrees with the sidecar: let DuckDB look at it
    return _ingest_typed(con, files, None)


def _ingest_typed(
    con: duckdb.DuckDBPyConnection, files: list[Path], types: dict[str, str | None] | None
) -> int:
    names = [f.name for f in files]
    done = {
        r[0]
        for r in con.execute(
            f"SELECT name FROM {SEGMENTS} WHERE name IN (SELECT unnest(?::VARCHAR[]))", [names]
        ).fetchall()
    }
    todo = [f for f in files if f.name not in done]
    for f in files:
        if f.name in done:  # ingested before a crash that kept its file
            _remove(f)
    if not todo:
        return 0
    detected = types if types is not None else _detect(con, todo)
    existing = table_columns(con)
    unreadable = unreadable_fields(existing, detected)
    sources = todo
    if unreadable:
        # Fields no column can hold and the reader cannot name apart: moved, in a rewritten
        # copy of each segment, into the overflow object, so nothing is lost and the store
        # never wedges on one odd key.
        sources = [_rewrite_segment(f, unreadable) for f in todo]
        detected = {k: v for k, v in detected.items() if k not in unreadable}
        detected[OVERFLOW] = "JSON"
    con.execute("BEGIN TRANSACTION")
    try:
        read, add, alter, overflow = plan_columns(existing, detected)
        if OVERFLOW in detected:
            read[OVERFLOW] = "JSON"
        for column, typ in add.items():
            con.execute(f"ALTER TABLE {EVENTS} ADD COLUMN {quote_ident(column)} {typ}")
        for column, typ in alter.items():
            con.execute(
                f"ALTER TABLE {EVENTS} ALTER COLUMN {quote_ident(column)} SET DATA TYPE {typ}"
            )
        columns = {**read, **dict.fromkeys(overflow, "JSON")}
        spec = (
            "{"
            + ", ".join(f"{quote_literal(k)}: {quote_literal(v)}" for k, v in columns.items())
            + "}"
        )
        select = [quote_ident(c) for c in read if c != OVERFLOW]
        if overflow:
            pairs = ", ".join(f"{quote_literal(n)}, {quote_ident(n)}" for n in overflow)
            packed = f"json_object({pairs})"
            if OVERFLOW in read:
                packed = f"json_merge_patch(coalesce({quote_ident(OVERFLOW)}, '{{}}'), {packed})"
            select.append(f"{packed} AS {quote_ident(OVERFLOW)}")
        elif OVERFLOW in read:
            select.append(quote_ident(OVERFLOW))
        count = con.execute(
            f"INSERT INTO {EVENTS} BY NAME SELECT {', '.join(select)} "
            f"FROM read_ndjson({_file_list(sources)}, columns={spec}, format='newline_delimited')"
        ).fetchall()[0][0]
        con.execute(
            f"INSERT INTO {SEGMENTS} SELECT unnest(?::VARCHAR[]), NULL, now()",
            [[f.name for f in todo]],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    for f in todo:
        _remove(f)
    for f in sources:
        if f not in todo:
            f.unlink(missing_ok=True)
    return int(count)


def unreadable_fields(existing: dict[str, str], detected: dict[str, str | None]) -> set[str]:
    """Fields the JSON reader cannot be told apart: an empty name, a NUL in it, or a name
    that differs only in case from a column or from another field of the batch (DuckDB's
    names are case-insensitive). A table column's own spelling, else the first, stays."""
    keep = {name.lower(): name for name in existing}
    bad = set()
    for name in detected:
        if not name.strip() or "\x00" in name:
            bad.add(name)
            continue
        first = keep.setdefault(name.lower(), name)
        if first != name:
            bad.add(name)
    bad.discard(OVERFLOW)
    return bad


def _rewrite_segment(segment: Path, unreadable: set[str]) -> Path:
    """A copy of *segment* with the *unreadable* fields of each event moved into its
    overflow object (merged with one it has); a torn last line is left out, as the reader
    would."""
    out = segment.with_name(segment.name + REWRITTEN_SUFFIX)
    lines = segment.read_bytes().split(b"\n")
    with private_umask(), open(out, "wb") as f:
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                if i == len(lines) - 1:
                    continue  # torn by a crash mid-write
                raise duckdb.InvalidInputException(
                    f"{segment.name}: line {i + 1} is not JSON"
                ) from None
            moved = {k: record.pop(k) for k in unreadable & record.keys()}
            if moved:
                extra = record.get(OVERFLOW)
                record[OVERFLOW] = {**extra, **moved} if isinstance(extra, dict) else moved
            f.write(orjson.dumps(record) + b"\n")
    return out


def ingest(
    con: duckdb.DuckDBPyConnection, paths: StorePaths, *, max_batches: int | None = None
) -> IngestResult:
    """Move every sealed segment into the table; the caller holds the exclusive store lock."""
    ensure_tables(con)
    spool = paths.ensure_spool()
    claim_abandoned(spool)
    # Left by a run, or a store's creator (_create), that died: we hold the lock both take.
    for stale in [*spool.glob("*" + REWRITTEN_SUFFIX), *spool.glob(f"{_NEW_PREFIX}*")]:
        stale.unlink(missing_ok=True)
    result = IngestResult()
    for n, batch in enumerate(_batches(sealed_segments(spool))):
        if max_batches is not None and n >= max_batches:
            break
        try:
            result.rows += _ingest_batch(con, batch)
            result.segments += len(batch)
        except CONTENT_ERRORS:
            # One unreadable segment must not hold up the others: retry them one by one.
            # Anything else (a full disk, no memory) stops the run and leaves the spool as
            # it is, to be ingested when the trouble is over.
            for f in batch:
                try:
                    result.rows += _ingest_batch(con, [f])
                    result.segments += 1
                except CONTENT_ERRORS:
                    bad = f.with_name(f.name + ".bad")
                    with contextlib.suppress(FileNotFoundError):
                        _types_path(f).unlink()  # first, as in _remove
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(f, bad)
                    result.bad.append(bad.name)
    return result


def ingest_store(
    db: str | os.PathLike[str] | None = None,
    *,
    lock_timeout: float | None = 30.0,
    threads: int | None = None,
) -> IngestResult | None:
    """Open the store under its lock and ingest; None when ``lock_timeout=0`` and it is busy.

    ``threads=1`` keeps a background ingester on one core, off the app's other cores.
    """
    paths = StorePaths.for_db(db)
    with paths.lock(exclusive=True, timeout=lock_timeout) as held:
        if not held:
            return None
        return ingest_locked(paths, threads=threads)


def ingest_locked(paths: StorePaths, *, threads: int | None = None) -> IngestResult:
    """Connect, ingest and close; the caller holds the exclusive store lock."""
    con = connect(paths)
    try:
        if threads is not None:
            con.execute(f"SET threads = {int(threads)}")
        return ingest(con, paths)
    finally:
        con.close()


def report_set_aside(result: IngestResult | None) -> None:
    """Tell stderr (a background ingester's log) which segments were set aside as ``.bad``."""
    if result is not None and result.bad:
        print(
            f"wideevents: unreadable segments set aside: {', '.join(result.bad)}", file=sys.stderr
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wideevents.store.ingest")
    parser.add_argument("--db", default=None)
    args = parser.parse_args(argv)
    os.umask(0o077)
    report_set_aside(ingest_store(args.db, threads=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
