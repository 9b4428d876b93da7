"""``wideevents serve``: the web UI and an OTLP/HTTP receiver on one port."""

from __future__ import annotations

import click

from ..store.paths import StorePaths, private_umask
from ._options import BadInput, db_option


@click.command()
@db_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. Anything but loopback needs a token.",
)
@click.option("--port", default=4318, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    envvar="WIDEEVENTS_SERVE_TOKEN",
    default=None,
    metavar="TOKEN",
    help="Require 'Authorization: Bearer TOKEN' on every API and OTLP request. Prefer "
    "WIDEEVENTS_SERVE_TOKEN (a flag shows in ps). Open the UI once as /?token=TOKEN.",
)
def serve(db: str, host: str, port: int, token: str | None) -> None:
    """A local web UI for the drill-down, and an OTLP/HTTP receiver on /v1/traces.

    Point any OpenTelemetry SDK at it (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318);
    each span becomes a wide event in the store, redacted like the SDK's own events.

    \b
      wideevents serve --db demo.duckdb
      WIDEEVENTS_SERVE_TOKEN=… wideevents serve --host 0.0.0.0
    """
    try:
        from .. import serve as server
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    if not token and not server.is_loopback(host):
        raise BadInput(
            f"--host {host} is not a loopback address: anyone who can reach it could read "
            "the store and write to it; set --token (or WIDEEVENTS_SERVE_TOKEN)"
        )
    if token is not None and len(token) < 16:
        raise BadInput("--token must be at least 16 characters (try: openssl rand -hex 16)")
    paths = StorePaths.for_db(db)
    if not paths.db.parent.is_dir():
        raise BadInput(f"--db {db}: the folder {paths.db.parent} does not exist")
    try:
        sock = server.listen(host, port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {_url(host, port)}: {exc.strerror or exc}"
            + (" (another server? pick another --port)" if port else "")
        ) from None
    with sock, private_umask():  # the store, its spool and segments: owner-only
        try:
            paths.ensure_spool()
        except OSError as exc:
            raise click.ClickException(
                f"cannot create {paths.spool}: {exc.strerror or exc}"
            ) from None
        where = _url(host, sock.getsockname()[1])
        click.echo(f"wideevents serve: {paths.db}", err=True)
        click.echo(f"  UI         {where}/" + ("?token=…" if token else ""), err=True)
        click.echo(f"  OTLP/HTTP  {where}/v1/traces", err=True)
        try:
            server.run(str(paths.db), host=host, token=token, sock=sock)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None


def _url(host: str, port: int) -> str:
    host = host.strip("[]")
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"
