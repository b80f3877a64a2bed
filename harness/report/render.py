"""Render the report dictionary as one self-contained HTML file, write both files, verify them."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from harness import __version__ as HARNESS_VERSION

from .model import (
    CHARGER_TO_CSMS,
    CSMS_TO_CHARGER,
    SCHEMA_NAME,
    compute_digest,
    digest_ok,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"
HTML_TEMPLATE = "certification.html.j2"
SCHEMA_FILE = TEMPLATE_DIR / "certification.schema.json"
JSON_NAME = "certification.json"
HTML_NAME = "certification.html"

_DATA_RE = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.DOTALL)


# --------------------------------------------------------------------------------------------
# Template helpers
# --------------------------------------------------------------------------------------------

_MSG_TYPES = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}


def _short_time(value: Any) -> str:
    if not value:
        return ""
    text = str(value)
    if "T" in text:
        text = text.split("T", 1)[1]
    return text[:12]


def _compact(obj: Any, limit: int = 110) -> str:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def frame_views(frames: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the template shows per frame: label, preview, pretty-printed text."""
    actions: dict[str, str] = {}
    views = []
    for f in frames:
        text = f.get("text") or ""
        label, preview, pretty = "frame", "", text
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if isinstance(msg, list) and msg and msg[0] in _MSG_TYPES and len(msg) >= 3:
            kind = _MSG_TYPES[msg[0]]
            uid = str(msg[1])
            if kind == "CALL":
                action = str(msg[2])
                actions[uid] = action
                label = f"CALL {action}"
                payload = msg[3] if len(msg) > 3 else None
                head = msg[:3]
            elif kind == "CALLRESULT":
                label, payload = f"{actions.get(uid, '?')} result", msg[2]
                head = msg[:2]
            else:
                label = f"{actions.get(uid, '?')} CALLERROR {msg[2]}"
                payload = msg[4] if len(msg) > 4 else None
                head = msg[:4]
            preview = _compact(payload) if payload is not None else ""
            if kind == "CALLERROR" and len(msg) > 3:
                preview = _compact(msg[3:])
            parts = [json.dumps(x, ensure_ascii=False) for x in head]
            if len(msg) > len(head):
                parts.append(json.dumps(payload, ensure_ascii=False, indent=2))
                parts.extend(json.dumps(x, ensure_ascii=False) for x in msg[len(head) + 1 :])
            pretty = "[" + ", ".join(parts) + "]"
            css = "e" if kind == "CALLERROR" else ""
        elif msg is not None:
            pretty = json.dumps(msg, ensure_ascii=False, indent=2)
            preview = _compact(msg)
            css = ""
        else:
            preview = text[:110]
            css = ""
        direction = f.get("direction")
        if direction == CHARGER_TO_CSMS:
            arrow, dcss = "CP → CSMS", "o"
        elif direction == CSMS_TO_CHARGER:
            arrow, dcss = "CP ← CSMS", "i"
        elif direction == "event":
            arrow, dcss = "· event", "ev"
            if msg is None:
                label, preview = text[:110], ""
        else:
            arrow, dcss = direction or "?", ""
        views.append(
            {
                "seq": f.get("seq"),
                "time": _short_time(f.get("time")),
                "full_time": f.get("time") or "",
                "arrow": arrow,
                "css": f"{dcss} {css}".strip(),
                "label": label,
                "preview": preview,
                "pretty": pretty,
                "note": f.get("note"),
            }
        )
    return views


_CODE_RE = re.compile(r"`([^`]+)`")


def _richtext(text: Any) -> Markup:
    """Escape *text*, then turn `backticks` into <code> (safe: runs on escaped text)."""
    escaped = str(escape("" if text is None else text))
    return Markup(_CODE_RE.sub(r"<code>\1</code>", escaped))


def _css(verdict: Any) -> str:
    return "v-" + re.sub(r"[^a-z]+", "-", str(verdict or "none").lower()).strip("-")


def _duration(seconds: Any) -> str:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return ""
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def _when(value: Any) -> str:
    """An RFC 3339 time as "2026-01-01 12:00:00 UTC" (seconds; other offsets kept)."""
    if not value:
        return ""
    text = str(value)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?", text)
    if not m:
        return text
    zone = m.group(3) or ""
    zone = " UTC" if zone in ("Z", "+00:00") else (f" {zone}" if zone else "")
    return f"{m.group(1)} {m.group(2)}{zone}"


def _script_json(report: Mapping[str, Any]) -> Markup:
    """The report as JSON that is safe inside <script type="application/json">."""
    text = json.dumps(report, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    # Compiling the template is a third of the report's time. Jinja's own per-user cache (a 0700 folder
    # in the temp dir, keyed by the template's source checksum) makes every run after the first skip it.
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):  # no usable temp dir: compile every time
        return None


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["richtext"] = _richtext
    env.filters["vcss"] = _css
    env.filters["duration"] = _duration
    env.filters["when"] = _when
    env.globals["frame_views"] = frame_views
    return env


_ENV: jinja2.Environment | None = None


def render_html(report: Mapping[str, Any]) -> str:
    """The HTML page for a report dictionary (deterministic: same dict, same bytes)."""
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    template = _ENV.get_template(HTML_TEMPLATE)

    # Each test's evidence is shown once, under the first requirement listing it.
    anchors: dict[str, str] = {}
    primary: set[tuple[str, str]] = set()
    for req in report.get("requirements", []):
        for t in req.get("tests", []):
            if t["nodeid"] not in anchors:
                anchors[t["nodeid"]] = f"t{len(anchors) + 1}"
                primary.add((req["id"], t["nodeid"]))
    for t in report.get("advisory", []):
        if t["nodeid"] not in anchors:
            anchors[t["nodeid"]] = f"t{len(anchors) + 1}"
            primary.add(("advisory", t["nodeid"]))

    groups: list[tuple[str, list[Mapping[str, Any]]]] = []
    for req in report.get("requirements", []):
        if not groups or groups[-1][0] != req.get("group"):
            groups.append((req.get("group"), []))
        groups[-1][1].append(req)

    return template.render(
        r=report,
        report_json=_script_json(report),
        groups=groups,
        anchors=anchors,
        primary=primary,
        or_groups={g["id"]: g for g in report.get("groups", [])},
    )


# --------------------------------------------------------------------------------------------
# Writing and verifying
# --------------------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_report(report: dict[str, Any], directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``certification.json`` and ``certification.html`` into *directory*.

    The digest is (re)computed here, so what is written is always sealed.
    Returns ``(json_path, html_path)``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    report["digest"] = {"algorithm": "sha256", "value": compute_digest(report)}
    json_path = directory / JSON_NAME
    html_path = directory / HTML_NAME
    _atomic_write(json_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _atomic_write(html_path, render_html(report))
    return json_path, html_path


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The report dictionary from a ``.json`` file or from the data embedded in a ``.html`` file."""
    text = Path(path).read_text(encoding="utf-8")
    if str(path).lower().endswith((".html", ".htm")):
        m = _DATA_RE.search(text)
        if not m:
            raise ValueError("no embedded report data (<script id=\"report-data\">)")
        return json.loads(m.group(1))
    return json.loads(text)


def check(path: str | os.PathLike[str]) -> tuple[bool, list[str]]:
    """Verify a report file; returns (ok, human-readable findings)."""
    findings: list[str] = []
    try:
        report = load_report(path)
    except (OSError, ValueError) as exc:
        return False, [f"cannot read a report from {path}: {exc}"]
    if not isinstance(report, dict) or report.get("schema") != SCHEMA_NAME:
        return False, [f"{path}: not an {SCHEMA_NAME} document"]
    digest = report.get("digest") or {}
    if not digest_ok(report):
        expected = compute_digest(report)
        return False, [
            f"{path}: digest MISMATCH: recorded {digest.get('algorithm')}:{digest.get('value')}, "
            f"content hashes to sha256:{expected}: the report was changed after it was written"
        ]
    findings.append(f"{path}: digest ok (sha256:{digest['value']})")
    if str(path).lower().endswith((".html", ".htm")):
        version = (report.get("harness") or {}).get("version")
        if version == HARNESS_VERSION:
            if render_html(report) != Path(path).read_text(encoding="utf-8"):
                return False, [
                    f"{path}: the embedded data is intact but the visible page differs from what it "
                    "renders to: the HTML was changed after it was written"
                ]
            findings.append(f"{path}: the visible page matches its data")
        else:
            findings.append(
                f"{path}: written by harness {version}, this is {HARNESS_VERSION}: only the embedded "
                "data was checked; check the visible page with that version, or read the JSON"
            )
    return True, findings


def verify(path: str | os.PathLike[str]) -> bool:
    """True when the report file at *path* (JSON, or HTML) carries a digest that matches it."""
    return check(path)[0]


def schema() -> dict[str, Any]:
    """The JSON Schema of the report (``templates/certification.schema.json``)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
