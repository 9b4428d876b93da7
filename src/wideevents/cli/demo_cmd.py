"""``wideevents demo``: a realistic store with one planted incident, and the on-call walk.

Three hours of a small shop's traffic, emitted through the SDK itself (requests with nested
DB and cache events), with simulated time. Forty-five minutes before "now", build
2026.11.26-7be21d0 reached a fifth of the hosts; on it, POST /checkout runs an order lookup
without its index: slow, and sometimes timing out. The walk then runs the same commands a
person would type: the aggregate, the heatmap, the breakdown that names the build, the
slowest requests, one trace.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

import wideevents
from wideevents import event

from ..sinks.duckdb import DuckDBSink
from ..store.paths import StorePaths
from ..testing import SimulatedClock, simulated_clock
from ._options import db_option, shell, with_db

OLD_BUILD = "2026.11.24-a1f3c9e"
NEW_BUILD = "2026.11.26-7be21d0"
ROUTES = [  # (method, route, weight, base ms)
    ("GET", "/", 18, 12.0),
    ("GET", "/products/{id}", 30, 25.0),
    ("GET", "/search", 14, 60.0),
    ("POST", "/cart/items", 12, 35.0),
    ("POST", "/checkout", 8, 140.0),
    ("GET", "/users/{id}/orders", 10, 45.0),
    ("GET", "/healthz", 8, 1.0),
]
REGIONS = ["us-east-1", "us-east-1", "eu-west-1", "ap-south-1"]
TIERS = ["free"] * 6 + ["pro"] * 3 + ["enterprise"]


def generate(db: Path, requests: int, seed: int = 7) -> int:
    """Emit *requests* requests (and their children) into the store at *db*; returns events."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    start = now - timedelta(hours=3)
    incident = now - timedelta(minutes=45)
    hosts = [f"web-{i:02d}" for i in range(10)]
    wideevents.configure(
        "shop-api",
        version=OLD_BUILD,
        environment="production",
        sinks=[DuckDBSink(db, ingest_interval=0)],
        queue_size=500_000,
    )
    weights = [w for _, _, w, _ in ROUTES]
    emitted = 0
    with simulated_clock(start) as clock:
        for i in range(requests):
            at = start + timedelta(seconds=3 * 3600 * i / requests + rng.random())
            clock.set(at)
            method, route, _, base = rng.choices(ROUTES, weights)[0]
            host = rng.choice(hosts)
            build = NEW_BUILD if at >= incident and host in hosts[:2] else OLD_BUILD
            user = rng.randrange(1, 20_000)
            fields: dict[str, Any] = {
                "http.request.method": method,
                "http.route": route,
                "url.path": route.replace("{id}", str(rng.randrange(1, 5000))),
                "user.id": user,
                "user.tier": TIERS[user % len(TIERS)],
                "cloud.region": rng.choice(REGIONS),
                "host.name": host,
                "service.version": build,
                "flag.new_checkout": rng.random() < 0.5,
                "flag.recs_v2": rng.random() < 0.2,
                "client.address": "10." + ".".join(str(rng.randrange(256)) for _ in range(3)),
            }
            emitted += _request(
                rng, clock, fields, base, planted=build == NEW_BUILD and route == "/checkout"
            )
    wideevents.flush()
    wideevents.shutdown()
    return emitted


def _request(
    rng: random.Random, clock: SimulatedClock, fields: dict[str, Any], base: float, planted: bool
) -> int:
    advance = clock.advance
    n = 1
    name = f"{fields['http.request.method']} {fields['http.route']}"
    with contextlib.suppress(TimeoutError), event(name, **fields) as ev:
        advance(rng.expovariate(1 / (base * 0.3)))
        try:
            if fields["http.route"] != "/healthz":
                n += _children(rng, advance, ev, fields["http.route"], planted)
        except TimeoutError:
            ev["http.response.status_code"] = 500
            raise
        advance(rng.expovariate(1 / (base * 0.7)))
        ev["http.response.status_code"] = 200
        ev["http.response.body.size"] = rng.randrange(200, 40_000)
    return n


def _children(rng: random.Random, advance: Any, ev: Any, route: str, planted: bool) -> int:
    cache: dict[str, Any] = {"cache.key_prefix": "session"}
    with event("cache.get", **cache) as c:
        hit = rng.random() < 0.85
        c["cache.hit"] = hit
        advance(rng.uniform(0.2, 1.5) if hit else rng.uniform(2, 6))
    n = 1
    for q in range(rng.randrange(1, 4)):
        n += 1
        table = (
            "orders"
            if route == "/checkout" and q == 0
            else rng.choice(["products", "users", "carts", "inventory"])
        )
        query: dict[str, Any] = {
            "db.system": "postgresql",
            "db.sql.table": table,
            "db.operation": "SELECT",
        }
        with event("db.query", **query):
            ms = rng.lognormvariate(1.5, 0.6)
            if planted and table == "orders":
                ms += rng.uniform(900, 2600)  # the missing index
                if rng.random() < 0.08:
                    advance(ms)
                    raise TimeoutError("canceling statement due to statement timeout")
            advance(ms)
            ev.incr("db.calls")
            ev.incr("db.time_ms", ms)
    return n


@click.command()
@db_option
@click.option(
    "--requests",
    default=70_000,
    show_default=True,
    type=click.IntRange(min=100),
    help="Requests to simulate (each emits 2-5 events).",
)
@click.option("--yes", is_flag=True, help="Replace an existing store at --db without asking.")
def demo(db: str, requests: int, yes: bool) -> None:
    """Build a realistic store with a planted incident and walk the drill-down."""
    from . import main

    paths = StorePaths.for_db(db)
    if paths.db.exists() and not yes and not _is_demo(paths):
        raise click.ClickException(
            f"{paths.db} already holds a store that the demo did not make; "
            "pass --db demo.duckdb (or --yes to replace it)"
        )
    for p in (paths.db, Path(str(paths.db) + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    shutil.rmtree(paths.spool, ignore_errors=True)
    started = time.perf_counter()
    click.echo(f"Simulating 3 hours of a shop's traffic ({requests:,} requests) into {paths.db} …")
    n = generate(paths.db, requests)
    (paths.spool / ".demo").touch()
    click.echo(f"{n:,} events emitted through the SDK in {time.perf_counter() - started:.1f} s\n")

    def step(title: str, args: list[str]) -> Any:
        full = with_db(args, db)
        click.echo(f"── {title}\n$ wideevents {shell(full)}")
        code = main.main(full, prog_name="wideevents", standalone_mode=False)
        click.echo()
        return code

    step(
        "1. Something is wrong: p99 by route over the last 3 hours",
        [
            "query",
            "-c",
            "count",
            "-c",
            "p99(duration_ms)",
            "-c",
            "count_distinct(user.id)",
            "--where",
            "http.route exists",
            "-g",
            "http.route",
            "--since",
            "3h",
        ],
    )
    step(
        "2. When did it start? Latency of POST /checkout over time",
        [
            "query",
            "-c",
            "heatmap(duration_ms)",
            "--where",
            "http.route = /checkout",
            "--granularity",
            "10m",
            "--since",
            "3h",
        ],
    )
    step(
        "3. What is different about the slow checkouts?",
        [
            "breakdown",
            "--where",
            "http.route = /checkout",
            "--select",
            "duration_ms >= 800",
            "--since",
            "3h",
            "--limit",
            "6",
        ],
    )
    step(
        "4. The slowest of them",
        [
            "events",
            "--where",
            "http.route = /checkout",
            "--where",
            f"service.version = {NEW_BUILD}",
            "--order",
            "duration_ms",
            "--limit",
            "5",
            "--columns",
            "timestamp,duration_ms,host.name,service.version,db.time_ms,"
            "http.response.status_code,trace_id",
        ],
    )
    trace_id = _slowest_trace(db)
    step("5. One of them, as a trace", ["trace", trace_id])
    canary = ["--where", "http.route exists", "--since", "45m"]
    old, new = f"service.version = {OLD_BUILD}", f"service.version = {NEW_BUILD}"
    code = step(
        "6. Would a canary gate have stopped the build? The new build against the old one",
        ["compare", "-b", old, "-c", new, *canary],
    )
    click.echo(f"exit code {code}: a deploy pipeline stops the rollout on anything but 0\n")
    code = step(
        "7. And the recommendations flag, on for a fifth of the users?",
        ["compare", "-b", "flag.recs_v2 = off", "-c", "flag.recs_v2 = on", *canary],
    )
    click.echo(f"exit code {code}: the flag is not what hurts\n")
    click.echo(
        f"Done in {time.perf_counter() - started:.1f} s. The store stays at {paths.db}: "
        "try `wideevents fields`, or your own query."
    )
    serve = shell(with_db(["wideevents", "serve"], db))
    click.echo(
        f"To look at it in a browser (drag a box on the heatmap): {serve}, "
        "then open http://127.0.0.1:4318/"
    )


def _is_demo(paths: StorePaths) -> bool:
    return (paths.spool / ".demo").exists()


def _slowest_trace(db: str) -> str:
    from ..query.engine import Store
    from ..query.model import TimeRange
    from ..query.parse import parse_filter

    with Store(db) as store:
        rows = store.events(
            [
                parse_filter("http.route = /checkout"),
                parse_filter(f"service.version = {NEW_BUILD}"),
            ],
            TimeRange(),
            order="duration_ms",
            limit=1,
        )
    return str(rows[0]["trace_id"])


__all__ = ["demo", "generate"]
