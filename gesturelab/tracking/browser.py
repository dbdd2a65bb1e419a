"""A real headless browser for looking at what the MLflow UI and JupyterLab show a person.

Debian's ``chromium`` driven over the DevTools protocol (``websocket-client``): open a page,
wait until it shows a text, click, read the visible text, save a screenshot. Used by
``benchmarks/ui_screenshots.py`` and the ``browser`` test tier; nothing else needs a browser.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from gesturelab.errors import GestureLabError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The path of an installed Chromium or Chrome, or None."""
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None):
    """Block until ``url`` answers (any HTTP status below 500)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise GestureLabError(f"the server for {url} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.5)
    raise GestureLabError(f"{url} did not answer within {timeout:.0f} s")


class Browser:
    """One headless Chromium with one tab, a fresh profile each time (as a new user sees it)."""

    def __init__(self, width: int = 1600, height: int = 1000, executable: str | None = None):
        import websocket  # websocket-client

        executable = executable or find_chromium()
        if executable is None:
            raise GestureLabError(
                "no Chromium found (tried " + ", ".join(CANDIDATES) + "); on Debian: "
                "apt-get install chromium"
            )
        self.width, self.height = width, height
        self._profile = tempfile.TemporaryDirectory(
            prefix="gesturelab-chromium-", ignore_cleanup_errors=True
        )
        port = free_port()
        self._process = subprocess.Popen(
            [
                executable,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                f"--remote-debugging-port={port}",
                f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_http(f"http://127.0.0.1:{port}/json/version", 30, self._process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            pages = [t for t in json.load(answer) if t.get("type") == "page"]
        # no Origin header: Chromium 111+ refuses DevTools connections from other origins
        self._socket = websocket.create_connection(
            pages[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self._next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params) -> dict:
        """One DevTools command; its result (events that arrive meanwhile are dropped)."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise GestureLabError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise GestureLabError(f"page script failed: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def open(self, url: str, wait_for: str | None = None, timeout: float = 60.0) -> str:
        """Load ``url``; with ``wait_for``, wait until the page's visible text contains it."""
        self.call("Page.navigate", url=url)
        if wait_for is not None:
            self.wait_for_text(wait_for, timeout)
        else:
            time.sleep(2)
        return self.text()

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.text()
            if text in shown:
                return shown
            time.sleep(0.5)
        raise GestureLabError(
            f"the page never showed {text!r} within {timeout:.0f} s; it shows: "
            + " ".join(self.text().split())[:600]
        )

    def click(self, selector: str) -> bool:
        """Click the first element matching a CSS selector; False when there is none."""
        return bool(
            self.evaluate(
                f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                " if (!e) return false; e.click(); return true; })()"
            )
        )

    def hover(self, selector: str) -> bool:
        """Move the mouse over the middle of the first element matching ``selector`` (scrolled
        into view): a real pointer event, as a person's mouse gives; False when there is none."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        if not box:
            return False
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
        return True

    def press(self, key: str) -> None:
        """One key press and release, as the keyboard sends it: a character ("1", "n") or a
        named key ("ArrowLeft", "Enter")."""
        named = {"ArrowLeft": 37, "ArrowUp": 38, "ArrowRight": 39, "ArrowDown": 40, "Enter": 13}
        if key in named:
            fields = {"key": key, "code": key, "windowsVirtualKeyCode": named[key]}
        else:
            code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
            fields = {"key": key, "code": code, "text": key,
                      "windowsVirtualKeyCode": ord(key.upper())}  # fmt: skip
        self.call("Input.dispatchKeyEvent", type="keyDown", **fields)
        fields.pop("text", None)
        self.call("Input.dispatchKeyEvent", type="keyUp", **fields)

    def settle(self, seconds: float = 1.5) -> None:
        """Let the page finish rendering after an action."""
        time.sleep(seconds)

    def screenshot(self, path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self._socket.close()
        finally:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._profile.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
