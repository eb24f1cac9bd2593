"""Headless Chromium driven over ``--remote-debugging-pipe`` (the DevTools protocol on fds 3 and 4):
no port, no websocket client, nothing to install but the browser.

``load(url)`` opens a page in a fresh tab, waits for its load event (which waits for its images) and
returns every image's decode state plus the console errors, uncaught exceptions and failed loads the
page produced.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)
IMAGES = (
    "JSON.stringify(Array.from(document.images, i => ({complete: i.complete, width: i.naturalWidth, height: "
    "i.naturalHeight})))"
)


@dataclass
class Page:
    images: list[dict]
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    title: str = ""


class Chromium:
    """One browser process; use as a context manager."""

    def __init__(self, binary: Path = CHROMIUM, timeout: float = 30.0):
        self.timeout, self._id, self._pending = timeout, 0, b""
        self.profile = tempfile.TemporaryDirectory(prefix="caveat-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # bash moves the browser's pipe ends onto the fds 3 (commands in) and 4 (replies out) that Chromium
        # expects; first lift them above 4 so that no redirection closes what another just made
        to_browser_r, from_browser_w = (_above(fd, 10) for fd in (to_browser_r, from_browser_w))
        self.stderr = tempfile.TemporaryFile()
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", script, str(binary), *FLAGS, f"--user-data-dir={self.profile.name}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(
                    f"Chromium did not answer within {self.timeout}s; its stderr:\n{self._stderr_tail()}"
                )
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError(
                    f"Chromium closed the pipe (exit {self.proc.poll()}); its stderr:\n{self._stderr_tail()}"
                )
            self._pending += chunk
        message, _, self._pending = self._pending.partition(b"\0")
        return json.loads(message)

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-3000:]

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, events: list | None = None
    ) -> dict:
        """Call ``method``; events that arrive before the reply are appended to ``events``."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if events is not None and "method" in reply:
                events.append(reply)

    def wait_for(self, method: str, session: str, events: list) -> None:
        """Collect events until ``method`` arrives for ``session``."""
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == method and e.get("sessionId") == session for e in events):
            events.append(self._read(deadline))

    def load(self, url: str) -> Page:
        """Open ``url`` in a new tab and report its images and errors."""
        events: list[dict] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session, events=events)
        self.send("Page.navigate", {"url": url}, session=session, events=events)
        self.wait_for("Page.loadEventFired", session, events)
        images = json.loads(
            self.send(
                "Runtime.evaluate", {"expression": IMAGES, "returnByValue": True}, session=session, events=events
            )["result"]["value"]
        )
        title = self.send(
            "Runtime.evaluate", {"expression": "document.title", "returnByValue": True}, session=session, events=events
        )["result"]["value"]
        self.send("Target.closeTarget", {"targetId": target}, events=events)
        return Page(images=images, errors=_errors([e for e in events if e.get("sessionId") == session]), title=title)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("Browser.close")
            except (OSError, RuntimeError, TimeoutError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self.stderr.close()
        self.profile.cleanup()


def _above(fd: int, low: int) -> int:
    """A duplicate of ``fd`` numbered ``low`` or higher (the original is closed)."""
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
    os.close(fd)
    return new


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif e["method"] == "Runtime.exceptionThrown":
            out.append("exception: " + p.get("exceptionDetails", {}).get("text", ""))
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(
                f"log ({p['entry'].get('source')}): {p['entry'].get('text')} {p['entry'].get('url', '')}".strip()
            )
        elif e["method"] == "Network.loadingFailed":
            out.append(f"load failed: {p.get('errorText')} (blocked: {p.get('blockedReason')})")
    return out
