"""The HTML report in a real browser: a failed, a rehearsal, a certified and an incomplete report opened
in headless Chromium at a phone's width (390 px) and a laptop's (1280 px) (docs/rules-report.md).

Checked at each width: the headline's text and the verdict's colour class; the SVG transaction timeline
laid out at a real size; the page body never scrolls sideways (wide tables and pictures scroll inside
their own box); the verdict is above the fold (inside the first screen); and a screenshot of the first
screen shows the verdict's colour (red only for "not certified"). The certified report also prints to
PDF.

Chromium is driven over the DevTools protocol with a small client on ``websockets`` (already a harness
dependency): the command line's ``--window-size`` cannot go below 500 px wide, so the phone's viewport is
set with ``Emulation.setDeviceMetricsOverride``. The page is the file as written; the layout numbers come
from ``Runtime.evaluate`` and the screenshot from ``Page.captureScreenshot``. Skipped when
``/usr/bin/chromium`` is missing (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from harness.report import write_report
from tests.test_report import _png_pixels
from tests.test_report_html import sample_report

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip
WIDTHS = {"phone": (390, 844, True), "laptop": (1280, 800, False)}
STEP = 60.0  # s: the bound on each browser step (start, load, evaluate, screenshot)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="not tested: /usr/bin/chromium is not installed (apt-get install chromium)"
)

PROBE = """(function(){
var de=document.documentElement, v=document.getElementById("verdict"), h=v.querySelector("h1"), r=h.getBoundingClientRect();
var wide=[];document.querySelectorAll("body *").forEach(function(e){var b=e.getBoundingClientRect();
 if(b.right>de.clientWidth+1&&wide.length<8&&!e.closest(".tw,.svgw,.fl"))wide.push(e.tagName+"."+e.className+" "+Math.round(b.right));});
var svg=document.querySelector("figure.pic.timeline svg"), s=svg?svg.getBoundingClientRect():null;
return JSON.stringify({scrollWidth:de.scrollWidth,bodyScrollWidth:document.body.scrollWidth,
 clientWidth:de.clientWidth,innerWidth:innerWidth,innerHeight:innerHeight,headline:h.textContent,
 verdictClass:v.className,headlineBottom:r.bottom,headlineTop:r.top,wide:wide,
 timelines:document.querySelectorAll("figure.pic.timeline svg").length,
 cadences:document.querySelectorAll("figure.pic.cadence svg").length,
 svgWidth:s?s.width:0,svgHeight:s?s.height:0,decided:document.querySelectorAll("circle[data-decided]").length});
})()"""

EXPECTED = {
    # kind: (overall class, headline text as a screen reader reads it, colour of the verdict box)
    "failed": ("o-not-certified", "not certified", "red"),
    "rehearsal": ("o-rehearsal-passed", "rehearsal passed: run in certification mode to certify", "slate"),
    "certified": ("o-certified", "certified", "green"),
    "incomplete": ("o-incomplete", "incomplete", "amber"),
}


class DevTools:
    """The few DevTools protocol commands these tests need, over one browser connection (flat sessions)."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.next_id, self.events = ws, 0, []

    async def _read(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), STEP))

    async def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send(json.dumps(msg))
        while True:
            got = await self._read()
            if got.get("id") == self.next_id:
                assert "error" not in got, f"{method}: {got['error']}"
                return got.get("result", {})
            self.events.append(got)

    async def event(self, method: str, session: str) -> dict[str, Any]:
        while True:
            for e in self.events:
                if e.get("method") == method and e.get("sessionId") == session:
                    self.events.remove(e)
                    return e
            self.events.append(await self._read())

    async def open(self, url: str, width: int, height: int, mobile: bool) -> str:
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        await self.send("Page.enable", session=session)
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}, session)
        await self.send("Page.navigate", {"url": url}, session)
        await self.event("Page.loadEventFired", session)
        return session


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    proc = await asyncio.create_subprocess_exec(
        str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    drain: asyncio.Task[bytes] | None = None
    try:
        assert proc.stderr is not None
        seen = []
        async with asyncio.timeout(STEP):
            while (line := (await proc.stderr.readline()).decode(errors="replace")):
                seen.append(line)
                if m := re.search(r"DevTools listening on (ws://\S+)", line):
                    break
            else:
                raise AssertionError("chromium did not start: " + "".join(seen[-20:]))
        # keep reading its log, so a chatty browser never blocks on a full pipe
        drain = asyncio.create_task(proc.stderr.read())
        async with websockets.connect(m.group(1), max_size=64 * 2**20, open_timeout=STEP) as ws:
            yield DevTools(ws)
    finally:
        if drain is not None:
            drain.cancel()
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _colour(pixel: tuple[int, int, int]) -> str | None:
    r, g, b = pixel
    if r > 150 and g < 60 and b < 80:
        return "red"  # #a4142a..#c0182b
    if r < 40 and 100 < g < 140 and 35 < b < 70:
        return "green"  # #137333..#1a7f37
    if 35 < r < 75 and 70 < g < 110 and 100 < b < 145 and b - r > 50:
        return "slate"  # #2f4f6f..#3d6386: neutral, not a pass and not a failure
    if 120 < r < 190 and 80 < g < 130 and b < 30:
        return "amber"  # #8a5a00..#b07800
    return None


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for kind in EXPECTED:
        _, html = write_report(sample_report(kind), tmp_path_factory.mktemp(kind))
        out[kind] = html
    return out


async def _look(page: Path, width: int, height: int, mobile: bool, profile: Path) -> tuple[dict[str, Any], bytes]:
    async with chromium(profile) as browser:
        session = await browser.open(page.as_uri(), width, height, mobile)
        probe = await browser.send("Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session)
        shot = await browser.send("Page.captureScreenshot", {"format": "png"}, session)
    return json.loads(probe["result"]["value"]), base64.b64decode(shot["data"])


@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_report_in_headless_chromium(kind: str, width: str, pages: dict[str, Path], tmp_path: Path) -> None:
    css, headline, colour = EXPECTED[kind]
    w, h, mobile = WIDTHS[width]
    got, png = asyncio.run(_look(pages[kind], w, h, mobile, tmp_path / "profile"))
    assert got["innerWidth"] == w, got

    # The headline and the verdict's colour class.
    assert " ".join(got["headline"].split()) == headline
    assert got["verdictClass"].split() == ["verdict", css]
    # No horizontal scroll of the page body.
    assert got["scrollWidth"] <= got["clientWidth"] and got["bodyScrollWidth"] <= got["clientWidth"], got["wide"]
    assert not got["wide"], f"elements wider than the page: {got['wide']}"
    # The verdict is above the fold.
    assert 0 <= got["headlineTop"] and got["headlineBottom"] <= got["innerHeight"], got
    # The SVG timeline (SC-2's transaction, with its deciding readings) and the CFG-2 cadence are laid out.
    assert got["timelines"] >= 1 and got["cadences"] == 1 and got["decided"] >= 1
    assert got["svgWidth"] >= 300 and got["svgHeight"] >= 150, got

    # What the reader sees first: the first screen, as a screenshot.
    shot = tmp_path / f"{kind}-{width}.png"
    shot.write_bytes(png)
    sw, sh, rows = _png_pixels(shot)
    assert (sw, sh) == (w, h)
    counts = {"red": 0, "green": 0, "slate": 0, "amber": 0}
    for row in rows[: int(got["headlineBottom"]) + 20]:
        for i in range(0, len(row), 3):
            found = _colour((row[i], row[i + 1], row[i + 2]))
            if found:
                counts[found] += 1
    assert counts[colour] > 5_000, f"the verdict's colour is not on the first screen: {counts}"
    assert counts["red"] < 200 or colour == "red", f"red on the first screen of a '{kind}' report: {counts}"


def test_certified_report_prints_to_pdf(pages: dict[str, Path], tmp_path: Path) -> None:
    pdf = tmp_path / "certification.pdf"
    subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'p'}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
                    pages["certified"].as_uri()], capture_output=True, timeout=120, check=False)
    assert pdf.exists() and pdf.read_bytes()[:5] == b"%PDF-"
    assert pdf.stat().st_size > 20_000
