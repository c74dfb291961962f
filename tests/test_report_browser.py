"""``report.html`` in a real browser: Debian's ``chromium``, headless, on the digits demo.

* ``--dump-dom`` of the ``file://`` URL: the page loads, every section is there, and the inline
  script ran (the sort buttons it adds are in the DOM).
* The DevTools protocol over ``--remote-debugging-pipe`` (no websocket library needed), at a
  fixed 1280x900 viewport: the page opened at ``#confusion`` has the heatmap at the top, and the
  screenshot shows it drawn (the blue diagonal cells, measured with Pillow). Chromium's own
  ``--screenshot`` flag cannot be used for this: it captures a blank page when the URL has a
  fragment. The same session records every network request, console message, log entry and
  uncaught exception while the page loads: the only request is the file itself, and there is no
  error (a Content-Security-Policy violation would be one). Sorting, the dark scheme, print media
  and embedded images are checked in the same session.

Chromium is installed by ``make test``; without it these tests fail, they never skip.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from bnnr_core.analysis.report import AnalysisReport
from bnnr_core.cli import cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SECTION_IDS = [
    "summary",
    "findings",
    "recommendations",
    "classes",
    "confusion",
    "calibration",
    "distribution",
    "errors",
    "xai",
    "data-quality",
    "cv",
]
WIDTH, HEIGHT = 1280, 900
TIMEOUT = 30.0


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "Debian's chromium is not installed: run `make test`, which installs it "
            "(apt-get install chromium), or install it yourself"
        )
    return found


def _flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
    ]


@pytest.fixture(scope="module")
def demo_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``report.html`` written by ``bnnr demo`` (train, save, ``bnnr analyze``)."""
    output = tmp_path_factory.mktemp("demo") / "demo"
    result = CliRunner().invoke(cli, ["demo", "--quiet", "--output", str(output)])
    assert result.exit_code == 0, result.output
    page = output / "analysis" / "report.html"
    assert page.is_file(), sorted(p.name for p in (output / "analysis").iterdir())
    return page


@pytest.fixture(scope="module")
def image_html(demo_html: Path) -> Path:
    """The demo report whose only images are one saliency overlay that exists and one that
    does not, written with :meth:`AnalysisReport.to_html` next to (not inside) the analysis
    folder."""
    analysis = demo_html.parent
    report = AnalysisReport.load(analysis / "analysis_report.json")
    overlay = analysis / "artifacts" / "browser-test" / "overlay.png"
    overlay.parent.mkdir(parents=True)
    Image.new("RGB", (300, 200), (255, 0, 0)).save(overlay)
    for key in ("confusion_pair_xai", "best_worst_examples", "data_quality", "confident_errors"):
        report.document[key] = [] if isinstance(report.document[key], list) else {}
    report.document["xai_examples_per_class"] = {
        "8": [
            {
                "true_label": 8,
                "pred_label": 9,
                "overlay_path": "artifacts/browser-test/overlay.png",
            },
            {"true_label": 8, "pred_label": 3, "overlay_path": "artifacts/browser-test/gone.png"},
        ]
    }
    return report.to_html(analysis.parent / "shared" / "report.html")


class DevTools:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``: messages are
    JSON terminated by a NUL byte, read by the browser from fd 3 and written to fd 4."""

    def __init__(self, chromium: str, profile: Path) -> None:
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()

        def wire_pipes() -> None:  # runs in the child: put the pipe ends at fds 3 and 4
            read_end, write_end = os.dup(to_browser), os.dup(from_browser)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [chromium, *_flags(profile), "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(3, 4),
            preexec_fn=wire_pipes,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._reader], [], [], remaining)
            if ready:
                chunk = os.read(self._reader, 1 << 20)
                if not chunk:
                    raise EOFError("chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command (to the page session once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self._receive(deadline)
            self.events.append(message)
            if message.get("method") == event:
                return

    def attach(self) -> None:
        """Attach to the page and enable the domains whose events the tests read."""
        pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        self.session = self.call(
            "Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True}
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def close(self) -> str:
        """Close the browser; return its stderr log."""
        try:
            self.call("Browser.close")
            self.process.wait(timeout=TIMEOUT)
        except Exception:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)
        finally:
            os.close(self._reader)
            os.close(self._writer)
        assert self.process.stderr is not None
        return self.process.stderr.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    tools = DevTools(_chromium(), tmp_path_factory.mktemp("chromium-profile"))
    try:
        tools.attach()
        yield tools
    finally:
        log = tools.close()
    for line in log.splitlines():
        assert "CONSOLE(" not in line and "Uncaught" not in line, line


def _problems(events: list[dict[str, Any]], page_url: str) -> list[str]:
    """Requests other than the page itself, failed loads, console errors and warnings, log
    errors (CSP violations among them) and uncaught exceptions among ``events``."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url != page_url and not url.startswith("data:"):
                problems.append(f"request to {url}")
        elif method == "Network.loadingFailed":
            problems.append(f"failed load: {params.get('errorText')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in {
            "error",
            "warning",
            "assert",
        }:
            problems.append(f"console {params['type']}: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            problems.append(f"exception: {params.get('exceptionDetails')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") in {"error", "warning"}:
            problems.append(f"log: {params['entry'].get('text')}")
    return problems


def test_dump_dom_has_every_section_and_the_script_ran(demo_html: Path, tmp_path: Path) -> None:
    completed = subprocess.run(
        [_chromium(), *_flags(tmp_path / "profile"), "--dump-dom", demo_html.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    dom = completed.stdout
    for section_id in SECTION_IDS:
        assert f'id="{section_id}"' in dom, section_id
    assert 'id="confusion-heatmap"' in dom and "<svg" in dom
    assert '<button type="button" class="sort">Recall</button>' in dom  # added by the script


def test_heatmap_is_drawn_and_the_page_makes_no_request_and_no_error(
    browser: DevTools, demo_html: Path
) -> None:
    browser.open(demo_html.as_uri() + "#confusion")
    assert _problems(browser.events, demo_html.as_uri()) == []
    requested = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
        and not e["params"]["request"]["url"].startswith("data:")
    ]
    assert requested == [demo_html.as_uri()]  # the watcher saw the page itself, nothing else
    broken = browser.evaluate(
        "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"
    )
    assert broken == []  # every embedded image (saliency, data quality) decodes

    box = browser.evaluate(
        "(() => { const r = document.querySelector('#confusion-heatmap svg')"
        ".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, scrollY]; })()"
    )
    left, top, right, bottom, scrolled = box
    assert scrolled > 0 and 0 <= top < 150 and bottom <= HEIGHT, box  # at the top: known place
    shot = base64.b64decode(browser.call("Page.captureScreenshot", {"format": "png"})["data"])
    with Image.open(io.BytesIO(shot)) as image:
        assert image.size == (WIDTH, HEIGHT)
        region = image.convert("RGB").crop((int(left), int(top), int(right), int(bottom)))
        data = region.tobytes()
    pixels = list(zip(data[0::3], data[1::3], data[2::3], strict=True))
    background = sum(1 for p in pixels if min(p) > 235)
    diagonal_blue = sum(1 for r, g, b in pixels if b > 180 and r < 110 and g < 150)
    # Ten diagonal cells of 35x35 pixels with recall above 70% are drawn in blue.
    assert diagonal_blue > 10 * 30 * 30, diagonal_blue
    assert background < len(pixels) * 0.9


def test_sorting_colour_schemes_and_print(browser: DevTools, demo_html: Path) -> None:
    browser.open(demo_html.as_uri())
    order = browser.evaluate(
        """(() => {
        const table = document.getElementById('class-table');
        const heads = [...table.tHead.rows[0].cells];
        const column = heads.findIndex(c => c.textContent.trim() === 'Recall');
        const read = () => [...table.tBodies[0].rows].map(
            r => parseFloat(r.cells[column].dataset.v));
        const button = heads[column].querySelector('button');
        button.click();
        const ascending = read();
        button.click();
        return [ascending, read(), heads[column].getAttribute('aria-sort')];
        })()"""
    )
    ascending, descending, state = order
    assert len(ascending) == 10
    assert ascending == sorted(ascending) and descending == sorted(descending, reverse=True)
    assert state == "descending"

    background = "getComputedStyle(document.body).backgroundColor"
    assert browser.evaluate(background) == "rgb(255, 255, 255)"
    browser.call(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    assert browser.evaluate(background) == "rgb(13, 17, 23)"
    browser.call("Emulation.setEmulatedMedia", {"media": "print", "features": []})
    assert browser.evaluate("getComputedStyle(document.querySelector('nav.toc')).display") == (
        "none"
    )
    browser.call("Emulation.setEmulatedMedia", {"media": "", "features": []})
    assert _problems(browser.events, demo_html.as_uri()) == []


def test_embedded_images_decode_and_missing_ones_are_placeholders(
    browser: DevTools, image_html: Path
) -> None:
    assert sorted(p.name for p in image_html.parent.iterdir()) == ["report.html"]
    browser.open(image_html.as_uri() + "#xai")
    assert _problems(browser.events, image_html.as_uri()) == []
    images = browser.evaluate(
        "[...document.images].map(i => [i.src.slice(0, 22), i.complete, i.naturalWidth, i.alt])"
    )
    assert len(images) == 1
    source, complete, width, alt = images[0]
    assert source == "data:image/png;base64," and complete and width == 256
    assert "true 8, predicted 9" in alt
    placeholders = browser.evaluate(
        "[...document.querySelectorAll('#xai .missing')].map(e => e.getAttribute('aria-label'))"
    )
    assert len(placeholders) == 1 and placeholders[0].startswith("missing image: ")
