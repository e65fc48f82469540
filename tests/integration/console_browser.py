"""A real headless Chromium (Debian's package), driven over the Chrome DevTools protocol, for console tests.

No WebDriver and no browser download: the test starts `chromium` with a fresh profile and a DevTools port,
talks to its page over one WebSocket (aiohttp's client, on a private event loop), and records every console
message, uncaught exception and failed resource load so a test can assert that a page produced none.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from tools.peers import require_peer

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
TIMEOUT_S = 30.0


def chromium_path() -> str:
    path = shutil.which("chromium")
    require_peer("chromium", path is not None, "run `bash tools/setup.sh` (installs Debian's chromium)")
    assert path is not None
    return path


class BrowserError(AssertionError):
    """The page did not do what the test expected (no load, a script error, a missing element)."""


class Chromium:
    """One headless Chromium with one page; `close()` ends the process and removes its profile."""

    def __init__(self) -> None:
        # Killed helpers may leave a file behind for a moment; the profile is throwaway either way.
        self._profile = tempfile.TemporaryDirectory(prefix="strom-chromium-", ignore_cleanup_errors=True)
        self._process = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: close() ends the helpers it forks, too
        )
        self._loop = asyncio.new_event_loop()
        self._client: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        try:
            port = self._devtools_port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT_S) as answer:
                targets = json.loads(answer.read())
            page = next(t for t in targets if t["type"] == "page")
            self._ws = self._run(self._connect(page["webSocketDebuggerUrl"]))
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable")
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=1280,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            self.close()
            raise

    def _devtools_port(self) -> int:
        """Chromium names its DevTools endpoint on stderr: read lines up to it, then drain the rest."""
        assert self._process.stderr is not None
        for line in self._process.stderr:
            if line.startswith("DevTools listening on ws://"):
                port = int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
                threading.Thread(target=self._process.stderr.read, daemon=True).start()
                return port
        raise BrowserError(f"chromium exited with status {self._process.wait()} before DevTools was ready")

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(asyncio.wait_for(coroutine, TIMEOUT_S))

    async def _connect(self, url: str) -> aiohttp.ClientWebSocketResponse:
        self._client = aiohttp.ClientSession()
        return await self._client.ws_connect(url, max_msg_size=0)

    async def _receive(self) -> dict[str, Any]:
        assert self._ws is not None
        message: dict[str, Any] = json.loads(await self._ws.receive_str())
        return message

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result; events arriving meanwhile are recorded."""
        ident = next(self._ids)

        async def exchange() -> dict[str, Any]:
            assert self._ws is not None
            await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
            while True:
                message = await self._receive()
                if message.get("id") == ident:
                    if "error" in message:
                        raise BrowserError(f"{method} failed: {message['error']}")
                    result: dict[str, Any] = message.get("result", {})
                    return result
                self.events.append(message)

        result: dict[str, Any] = self._run(exchange())
        return result

    def wait_for_event(self, method: str, since: int) -> dict[str, Any]:
        """The first `method` event recorded at index `since` or later, waiting for it if needed."""

        async def wait() -> dict[str, Any]:
            for event in self.events[since:]:
                if event.get("method") == method:
                    return event
            while True:
                event = await self._receive()
                self.events.append(event)
                if event.get("method") == method:
                    return event

        event: dict[str, Any] = self._run(wait())
        return event

    # --- what tests do -----------------------------------------------------------------------------

    def goto(self, url: str) -> None:
        mark = len(self.events)
        answer = self.call("Page.navigate", url=url)
        if answer.get("errorText"):
            raise BrowserError(f"cannot load {url}: {answer['errorText']}")
        self.wait_for_event("Page.loadEventFired", mark)

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def text(self, selector: str) -> str:
        value = self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText ?? null")
        if value is None:
            shown = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
            where = self.evaluate("location.href")
            raise BrowserError(f"no element matches {selector!r} on {where}:\n{shown}")
        return str(value)

    def fill(self, selector: str, value: str) -> None:
        self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" if (!e) throw new Error('no ' + {json.dumps(selector)}); e.value = {json.dumps(value)}; }})()"
        )

    def submit(self, selector: str, button: str | None = None) -> None:
        """Submit a form (with the given submit button, if any) and wait for the answer page to load."""
        mark = len(self.events)
        chosen = "null" if button is None else f"document.querySelector({json.dumps(button)})"
        self.evaluate(
            f"(() => {{ const f = document.querySelector({json.dumps(selector)});"
            f" if (!f) throw new Error('no ' + {json.dumps(selector)}); f.requestSubmit({chosen}); }})()"
        )
        self.wait_for_event("Page.loadEventFired", mark)

    def console_errors(self, since: int = 0) -> list[str]:
        """Console errors, uncaught exceptions and failed loads recorded at index `since` or later."""
        errors = []
        for event in self.events[since:]:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                errors.append(str(params["exceptionDetails"].get("text")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"{params['entry'].get('text')} ({params['entry'].get('url')})")
        return errors

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        if self._ws is not None:
            self._run(self._ws.close())
        if self._client is not None:
            self._run(self._client.close())
        self._loop.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(TIMEOUT_S)
        self._profile.cleanup()
