"""Load a page in headless Chromium and record what a person's browser would complain about.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages ending in NUL
on file descriptors 3 and 4), so nothing beyond Debian's ``chromium`` package and the
standard library is needed. :func:`inspect_page` returns the console errors, uncaught
exceptions, failed loads and every URL the page requested, plus a full-page screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Safety net against a hung browser, not a performance assertion.
STEP_TIMEOUT = 60.0


@dataclass
class PageReport:
    console: list[dict] = field(default_factory=list)  # every console message: {"level", "text"}
    exceptions: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requested_urls: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    evaluated: dict = field(default_factory=dict)

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads: what must be empty."""
        return (
            [m["text"] for m in self.console if m["level"] in ("error", "assert")]
            + self.exceptions
            + [f"failed to load {u}" for u in self.failed_requests]
        )


class DevToolsPipe:
    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int):
        self.proc = proc
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the DevTools pipe (exit code {self.proc.poll()})")
                self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method and event.get("sessionId") == session:
                return self.events.pop(i)
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method and event.get("sessionId") == session:
                return event
            self.events.append(event)


def inspect_page(url: str, width: int = 1280, height: int = 2000, evaluate: dict[str, str] | None = None) -> PageReport:
    """Open ``url`` in headless Chromium, wait for the load event, take a full-page
    screenshot and return what happened. ``evaluate``: name -> JS expression, results in
    ``report.evaluated``."""
    profile = tempfile.mkdtemp(prefix="covidlake-chromium-")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()

    def wire_fds() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
        commands, replies = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w))
        os.dup2(commands, 3)
        os.dup2(replies, 4)

    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # tests run as root in a container
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    proc = subprocess.Popen(
        args,
        pass_fds=(3, 4, to_browser_r, from_browser_w),
        preexec_fn=wire_fds,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(to_browser_r)
    os.close(from_browser_w)
    report = PageReport()
    try:
        cdp = DevToolsPipe(proc, to_browser_w, from_browser_r)
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.send(f"{domain}.enable", session=session)
        cdp.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        cdp.events.clear()  # about:blank's own events
        cdp.send("Page.navigate", {"url": url}, session=session)
        cdp.wait_for("Page.loadEventFired", session)
        for name, expression in (evaluate or {}).items():
            result = cdp.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
            report.evaluated[name] = result.get("result", {}).get("value")
        size = cdp.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": width, "height": min(int(size["height"]), 16000), "scale": 1}
        shot = cdp.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}, session=session
        )
        report.screenshot = base64.b64decode(shot["data"])
        # A round trip, so that every event the page produced so far has been read.
        cdp.send("Runtime.evaluate", {"expression": "1"}, session=session)
        _collect(cdp.events, report)
        with contextlib.suppress(RuntimeError, OSError):
            cdp.send("Browser.close")
    finally:
        os.close(to_browser_w)
        os.close(from_browser_r)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    return report


def _collect(events: list[dict], report: PageReport) -> None:
    requests: dict[str, str] = {}
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            report.console.append({"level": params.get("type"), "text": text})
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {}).get("description")
            report.exceptions.append(exception or details.get("text", "exception"))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            report.console.append({"level": entry.get("level"), "text": f"{entry.get('source')}: {entry.get('text')}"})
        elif method == "Network.requestWillBeSent":
            requests[params["requestId"]] = params["request"]["url"]
            report.requested_urls.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            report.failed_requests.append(requests.get(params.get("requestId"), "?"))
        elif method == "Network.responseReceived" and params.get("response", {}).get("status", 200) >= 400:
            report.failed_requests.append(params["response"]["url"])


def save(report: PageReport, path: Path) -> Path:
    path.write_bytes(report.screenshot)
    return path
