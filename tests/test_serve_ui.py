"""The UI of `wideevents serve` in a real browser: Debian's chromium, driven by Playwright.

The demo's store (a smaller one), `wideevents serve` as a process, and a person's path
through it: a query, a box dragged around the slow cluster on the heatmap, the breakdown
naming the planted build, its events, a trace, a filter from a breakdown value, and a
broken query that must show an error. Screenshots of each view land in tests/artifacts/.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from wideevents.cli.demo_cmd import NEW_BUILD, generate

from .serve_helpers import Served, serve

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("ui") / "demo.duckdb"
    generate(db, 6000)  # ~22k events: three hours with the planted incident
    with serve(db) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _hash(**params: str | list[str]) -> str:
    parts = []
    for key, value in params.items():
        for v in [value] if isinstance(value, str) else value:
            parts.append(f"{key}={quote(v)}")
    return "#" + "&".join(parts)


def test_drag_a_box_on_the_heatmap_and_drill_down_to_a_trace(
    demo_server: Served, browser: Any
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    view = _hash(
        calc=["count", "p99(duration_ms)"],
        where="http.route = /checkout",
        group_by="service.version",
        heat="duration_ms",
        granularity="auto",
    )
    page.goto(demo_server.url + "/" + view)
    page.wait_for_function("() => window.wideevents.heatmap !== null", timeout=30_000)
    # The results table and the heatmap load side by side: either may come first.
    page.locator("#results").get_by_text("2026.11.26-7be21d0").first.wait_for(timeout=30_000)
    # The store's fields are offered in the group-by and heatmap inputs (numeric ones there).
    page.wait_for_function("() => document.querySelectorAll('#field-names option').length > 10")
    numeric = page.eval_on_selector_all("#numeric-fields option", "os => os.map(o => o.value)")
    assert "duration_ms" in numeric and "db.time_ms" in numeric and "http.route" not in numeric

    # The planted cluster: the last 45 minutes, slower than ~600 ms. Drag around it.
    box = page.evaluate(
        """() => {
          const h = window.wideevents.heatmap;
          const n = h.times.length, rows = h.edges.length - 1;
          const low = h.edges.findIndex((e) => e >= 600);
          const px = (x, y) => h.chart.convertToPixel({ gridIndex: 0 }, [x, y]);
          const [a, b] = [px(Math.floor(n * 0.8), rows - 1), px(n - 1, low)];
          const r = h.chart.getDom().getBoundingClientRect();
          return { x0: r.left + a[0] - 8, y0: r.top + a[1] - 8,
                   x1: r.left + b[0] + 8, y1: r.top + b[1] + 8 };
        }"""
    )
    page.mouse.move(box["x0"], box["y0"])
    page.mouse.down()
    page.mouse.move((box["x0"] + box["x1"]) / 2, (box["y0"] + box["y1"]) / 2, steps=4)
    page.mouse.move(box["x1"], box["y1"], steps=4)
    page.mouse.up()

    page.wait_for_selector("#breakdown .field", timeout=30_000)
    assert "select=timestamp" in page.url  # the selection is in the shareable URL
    first = page.locator("#breakdown .field").first
    assert first.get_attribute("data-field") == "service.version"
    assert NEW_BUILD in first.locator(".top").inner_text()
    page.wait_for_timeout(300)  # the bar charts draw on the next frame
    page.locator("#heatmap-section").screenshot(path=str(ARTIFACTS / "serve-heatmap.png"))
    top = page.locator("#heatmap-section").bounding_box()
    bottom = page.locator("#breakdown .field").nth(5).bounding_box()
    page.screenshot(  # the README's picture (docs/img/serve.png): the box and its breakdown
        path=str(ARTIFACTS / "serve.png"),
        full_page=True,
        clip={
            "x": 0,
            "y": top["y"],
            "width": 1400,
            "height": bottom["y"] + bottom["height"] - top["y"],
        },
    )
    page.screenshot(path=str(ARTIFACTS / "serve-breakdown.png"), full_page=True)

    # The events behind the box, then one of them as a trace.
    rows = page.locator("#events tr.clickable")
    rows.first.wait_for(timeout=30_000)
    assert rows.count() > 0
    assert NEW_BUILD in rows.first.inner_text()
    trace_id = rows.first.locator("td").last.inner_text()
    rows.first.click()
    page.wait_for_selector("#trace canvas", timeout=30_000)
    assert page.locator("#trace-what").inner_text() == trace_id
    assert f"trace={trace_id}" in page.url
    page.wait_for_timeout(300)
    page.locator("#trace-section").screenshot(path=str(ARTIFACTS / "serve-trace.png"))

    # A breakdown value becomes a filter.
    page.locator('#breakdown .field[data-field="service.version"] a.filter').click()
    page.wait_for_function(
        "() => document.querySelector('#query textarea[name=where]').value"
        f".includes('service.version = {NEW_BUILD}')"
    )
    state = parse_qs(urlsplit(page.url).fragment)
    assert state["where"] == ["http.route = /checkout", f"service.version = {NEW_BUILD}"]
    assert errors == []
    # Offline: the page, its script and style, and the API; nothing from anywhere else.
    assert fetched and all(u.startswith(demo_server.url + "/") for u in fetched), fetched
    assert any("/assets/" in u and u.endswith(".js") for u in fetched)
    page.close()


def test_a_broken_query_shows_an_error_not_a_blank_page(demo_server: Served, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(demo_server.url + "/" + _hash(calc="count"))
    page.wait_for_function("() => window.wideevents.heatmap !== null", timeout=30_000)
    page.fill("#query textarea[name=where]", "duration_ms >>> 5")
    page.click("#query button[type=submit]")
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=30_000)
    text = error.inner_text()
    assert text.startswith("Error: ") and "duration_ms >>> 5" in text and "^" in text
    assert page.evaluate("() => window.wideevents.heatmap") is None  # no stale chart under it
    page.screenshot(path=str(ARTIFACTS / "serve-error.png"))
    page.fill("#query textarea[name=where]", "duration_msx > 5")
    page.click("#query button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#error').innerText.includes(\"did you mean 'duration_ms'\")"
    )
    page.close()


def test_the_page_takes_a_token_once_and_keeps_it_out_of_the_address_bar(
    demo_server: Served, browser: Any
) -> None:
    token = "ui-token-0123456789abcdef"
    with serve(demo_server.db, token=token) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/?token=" + token + _hash(calc="count"))
        page.wait_for_function("() => window.wideevents.heatmap !== null", timeout=30_000)
        assert token not in page.url
        assert page.locator("#error").is_hidden()
        page.reload()  # the tab keeps it
        page.wait_for_function("() => window.wideevents.heatmap !== null", timeout=30_000)
        assert page.locator("#error").is_hidden()
        other = browser.new_page()  # a new tab without it is refused, visibly
        other.goto(srv.url + "/" + _hash(calc="count"))
        other.locator("#error").wait_for(state="visible", timeout=30_000)
        assert "missing or wrong token" in other.locator("#error").inner_text()
        page.close()
        other.close()


def test_a_click_on_a_result_group_filters_on_it(demo_server: Served, browser: Any) -> None:
    page = browser.new_page()
    page.goto(demo_server.url + "/" + _hash(calc="count", group_by="service.version"))
    row = page.locator("#results tr.clickable", has_text=NEW_BUILD)
    row.click()
    page.wait_for_function(
        "() => document.querySelector('#query textarea[name=where]').value"
        f" === 'service.version = {NEW_BUILD}'"
    )
    assert parse_qs(urlsplit(page.url).fragment)["where"] == [f"service.version = {NEW_BUILD}"]
    page.wait_for_function(  # the results now hold that build only
        "() => document.querySelectorAll('#results tr.clickable').length === 1"
    )
    page.close()


def test_a_group_value_with_a_newline_or_quotes_filters_on_exactly_it(
    tmp_path: Path, browser: Any
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    notes = ["x\ny", "x\ny", "x\ny", "xny", 'say "hi"\\now', 'say "hi"\\now', "x y"]
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    start = time.time_ns() - 60 * 10**9
    for i, note in enumerate(notes):
        span = spans.add()
        span.trace_id, span.span_id = (i + 1).to_bytes(16, "big"), (i + 1).to_bytes(8, "big")
        span.name, span.start_time_unix_nano = "op", start + i
        span.end_time_unix_nano = start + i + 1_000_000
        kv = span.attributes.add()
        kv.key, kv.value.string_value = "note", note
    with serve(tmp_path / "notes.duckdb") as srv:
        status, _ = srv.post(
            "/v1/traces", req.SerializeToString(), {"Content-Type": "application/x-protobuf"}
        )
        assert status == 200
        for text, count in (("x", 3), ("say", 2)):
            page = browser.new_page()
            page.goto(srv.url + "/" + _hash(calc="count", group_by="note"))
            row = page.locator("#results tr.clickable", has_text=text).first
            row.click()
            page.wait_for_function(
                "() => document.querySelectorAll('#results tr.clickable').length === 1"
            )
            (where,) = parse_qs(urlsplit(page.url).fragment)["where"]
            assert "\n" not in where  # one line in the where box
            status, rows = srv.get("/api/query?" + urlencode({"where": where}))
            assert (status, rows) == (200, [{"count": count}]), where
            page.close()
