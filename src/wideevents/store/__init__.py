"""The local store: a DuckDB file with one ``events`` table, fed through per-process spools.

Writers (the app's pipeline, through :class:`~wideevents.sinks.duckdb.DuckDBSink`) never open
the database: each process appends JSON lines to segment files of its own in a folder beside
it (:mod:`.spool`). The ingester (:mod:`.ingest`) moves sealed segments into the ``events``
table in bulk, one transaction per batch, and records the segment names in the same
transaction so a crash never ingests twice. Processes that open the database coordinate
through a lock file (:mod:`.paths`), so none ever meets DuckDB's own lock error.

This package is shared by the write side (the sink, which needs only :mod:`.spool` and
:mod:`.paths`, never duckdb) and the read side (the query layer and the CLI).
"""

from .paths import StorePaths, default_db_path

__all__ = ["StorePaths", "default_db_path"]
