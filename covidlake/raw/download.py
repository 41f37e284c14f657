"""The COVID facts source: a CSV over HTTP(S), streamed to a local file with timeouts,
retries, a size limit, a deadline and redirect checks."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from covidlake.errors import SourceError
from covidlake.raw.capture import Capture, CsvRowCounter
from covidlake.schemas import COVID_FACTS
from covidlake.settings import Settings


def _http_session(settings: Settings):
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=settings.http_retries,
        connect=settings.http_retries,
        read=settings.http_retries,
        status=settings.http_retries,
        backoff_factor=settings.http_backoff,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=True,
    )
    session = _redirect_checking_session(settings)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _redirect_checking_session(settings: Settings):
    """A requests.Session that refuses https -> http redirects, and cross-host ones when
    settings say so, before following them (requests follows every redirect otherwise)."""
    import requests

    class RedirectCheckingSession(requests.Session):
        def get_redirect_target(self, resp):
            target = super().get_redirect_target(resp)
            if target:
                check_redirect(resp.url, urljoin(resp.url, target), settings)
            return target

    return RedirectCheckingSession()


def check_redirect(origin: str, target: str, settings: Settings) -> None:
    old, new = urlsplit(origin), urlsplit(target)
    if old.scheme == "https" and new.scheme != "https":
        raise SourceError(f"{origin}: refused a redirect from https to {new.scheme or 'a relative'} URL {target}")
    if settings.http_cross_host_redirects == "refuse" and old.hostname != new.hostname:
        raise SourceError(
            f"{origin}: refused a redirect to another host ({target}; COVIDLAKE_HTTP_CROSS_HOST_REDIRECTS=refuse)"
        )


@contextmanager
def download_deadline(resp, deadline: float, seconds: float, url: str) -> Iterator[None]:
    """Shut the response's socket at the deadline (urllib3's HTTPResponse.shutdown, meant for
    a read blocked in another thread), so a source dripping a byte a second ends here.
    deadline: a time.monotonic() value; seconds: the whole budget, for the message."""
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        with suppress(Exception):  # already closed or released: nothing left to stop
            resp.raw.shutdown()

    timer = threading.Timer(max(deadline - time.monotonic(), 0.0), stop)
    timer.daemon = True
    timer.start()
    message = f"{url}: download not finished within {seconds:g} s (COVIDLAKE_HTTP_DOWNLOAD_DEADLINE_SECONDS)"
    try:
        yield
    except Exception:
        if fired.is_set():
            raise SourceError(message) from None
        raise
    finally:
        timer.cancel()
    if fired.is_set():  # the shutdown may read as a clean end of a chunked body
        raise SourceError(message)


def declared_size(url: str, settings: Settings) -> int | None:
    """The Content-Length a HEAD request to url declares; None when unknown (not HTTP,
    no such header, any error). A hint asked ahead of the download (see runner.prestart_spark)."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    try:
        with _redirect_checking_session(settings) as session:
            timeout = (settings.http_connect_timeout, settings.http_connect_timeout)
            resp = session.head(url, allow_redirects=True, timeout=timeout)
        length = resp.headers.get("Content-Length", "") if resp.ok else ""
    except Exception:  # a hint only: the download reports the source's problems
        return None
    return int(length) if length.isdigit() else None


def download_csv(url: str, dest: Path, settings: Settings) -> Capture:
    """Stream url to dest with timeouts, retries with backoff on connection errors and
    5xx, a size limit and a Content-Length check. Raises SourceError; dest is removed."""
    import requests

    sha = hashlib.sha256()
    counter = CsvRowCounter()
    received = 0
    deadline = time.monotonic() + settings.http_download_deadline_seconds
    try:
        with (
            _http_session(settings) as session,
            session.get(url, stream=True, timeout=(settings.http_connect_timeout, settings.http_read_timeout)) as resp,
            download_deadline(resp, deadline, settings.http_download_deadline_seconds, url),
        ):
            if resp.status_code >= 400:
                raise SourceError(f"{url}: HTTP {resp.status_code} {resp.reason}")
            declared = resp.headers.get("Content-Length")
            if declared is not None and int(declared) > settings.max_download_bytes:
                raise SourceError(
                    f"{url}: Content-Length {declared} exceeds the limit of {settings.max_download_bytes} bytes"
                )
            with dest.open("wb") as out:
                # decode_content: a gzip Content-Encoding is undone here; raw bytes land as CSV.
                for chunk in resp.raw.stream(1 << 20, decode_content=True):
                    received += len(chunk)
                    if received > settings.max_download_bytes:
                        raise SourceError(f"{url}: body exceeds the limit of {settings.max_download_bytes} bytes")
                    sha.update(chunk)
                    counter.update(chunk)
                    out.write(chunk)
            encoded = resp.headers.get("Content-Encoding", "identity") not in ("identity", "")
            if declared is not None and not encoded and received != int(declared):
                raise SourceError(f"{url}: received {received} bytes, Content-Length said {declared}")
    except SourceError:
        dest.unlink(missing_ok=True)
        raise
    except requests.exceptions.RetryError as err:
        dest.unlink(missing_ok=True)
        raise SourceError(f"{url}: still failing after {settings.http_retries} retries ({_reason(err)})") from None
    except requests.exceptions.RequestException as err:
        dest.unlink(missing_ok=True)
        raise SourceError(f"{url}: download failed after {settings.http_retries} retries ({_reason(err)})") from None
    except Exception as err:  # urllib3 errors raised mid-body (short read, reset)
        dest.unlink(missing_ok=True)
        raise SourceError(f"{url}: download failed mid-body ({type(err).__name__}: {err})") from None
    rows = counter.finish(COVID_FACTS, f"COVID CSV from {url}")
    return Capture(dest, sha.hexdigest(), received, rows, final_url=resp.url, columns=counter.columns)


def _reason(err: Exception) -> str:
    inner = err.args[0] if err.args else err
    reason = getattr(inner, "reason", None)
    return str(reason or inner)
