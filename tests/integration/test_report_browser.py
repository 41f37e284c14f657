"""The report in a real browser: headless Chromium (Debian's `chromium` package) loads
`/` from `covidlake serve`, takes a full-page screenshot and reports console errors,
uncaught exceptions, failed loads and every URL the page requested (DevTools protocol).

`make report-check` installs chromium when missing and runs this file; the screenshot is
kept at $COVIDLAKE_SCREENSHOT (default: pytest's tmp folder)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from covidlake.api.serve import make_server
from covidlake.report import CHARTS

from .chromium import CHROMIUM, inspect_page

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason="headless Chromium not installed: `apt-get install -y chromium` (or `make report-check`)",
    ),
]

CHECKS = {
    "self_check": "document.body.getAttribute('data-report-check')",
    "images": "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length",
    "charts": "document.querySelectorAll('section[data-chart]').length",
}


@pytest.fixture(scope="module")
def report_server(report_lake):
    server = make_server(str(report_lake[0]), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_report_renders_without_console_errors(report_server, tmp_path):
    page = inspect_page(report_server + "/", evaluate=CHECKS)
    shot = Path(os.environ.get("COVIDLAKE_SCREENSHOT") or tmp_path / "report.png")
    shot.write_bytes(page.screenshot)

    assert page.errors == []
    assert page.evaluated["self_check"] == "ok"  # the page's script ran: chart data parsed, images decoded
    assert page.evaluated["charts"] == len(CHARTS)
    assert page.evaluated["images"] == len(CHARTS)
    for url in page.requested_urls:  # the page itself, then only data: URIs
        assert url.startswith((report_server + "/", "data:")), url[:100]

    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot))
    assert image.width == 1280 and image.height > 2000  # the whole page, not only the window
    colours = image.convert("RGB").resize((320, image.height // 4)).getcolors(maxcolors=1 << 20)
    assert len(colours) > 200, "the screenshot looks blank"


def test_the_check_catches_a_broken_page(lake_copy, tmp_path):
    """The same check on a page with a console error, an exception and a missing image fails."""
    (lake_copy / "report").mkdir(exist_ok=True)
    (lake_copy / "report" / "index.html").write_text(
        "<!DOCTYPE html><link rel=icon href='data:,'><p>broken</p><img src='/report/missing.png'>"
        "<script>console.error('chart failed'); undefinedFunction();</script>"
    )
    server = make_server(str(lake_copy), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = inspect_page(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    joined = "\n".join(page.errors)
    assert "chart failed" in joined
    assert "undefinedFunction" in joined
    assert "missing.png" in joined
