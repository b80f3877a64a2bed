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

from . import pictures as _pictures
from .model import (
    CERTIFIED,
    CHARGER_TO_CSMS,
    CSMS_TO_CHARGER,
    FAIL,
    INCOMPLETE,
    NOT_CERTIFIED,
    NOT_TESTED,
    PASS,
    REHEARSAL_PASSED,
    SCHEMA_NAME,
    Outcome,
    Overall,
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


# --------------------------------------------------------------------------------------------
# Words for people (docs/rules-report.md): no Python names in the main text, no machine paths
# --------------------------------------------------------------------------------------------

#: OCPP-J CALLERROR codes (OCPP-J 1.6 §4.2.3) look like exception names but are words the reader needs.
_OCPP_ERROR_CODES = frozenset(
    {"NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError", "FormationViolation",
     "PropertyConstraintViolation", "OccurenceConstraintViolation", "OccurrenceConstraintViolation",
     "TypeConstraintViolation", "GenericError",
     # ChargePointErrorCode (OCPP 1.6 §7.6), in StatusNotification
     "ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "OtherError", "OverCurrentFailure",
     "PowerMeterFailure", "PowerSwitchFailure", "ReaderFailure", "ResetFailure"}
)
# "AssertionError: ", "harness.errors.ChargerFailure: ", "Failed: " at the start of the text or of a line,
# or after "…): " / ": " (the collector's "harness error (the charger was not judged): KeyError: 'x'").
_EXC_RE = re.compile(
    r"(?m)(^|:\s)((?:[a-z_][\w]*\.)*([A-Z]\w*(?:Error|Exception|Failure|Violation|Timeout|Refused|Interrupt|Exit|Answer)"
    r"|Failed|Skipped|XFailed)):[ \t]*"
)
# pytest's assertion rewriting appends "assert …" and "+  where …" lines to a message: for engineers.
_INTROSPECTION_RE = re.compile(r"\n(?:assert |AssertionError$|\+\s|where |and\s{2}|\s+\+).*", re.DOTALL)
# Absolute paths of the machine the harness ran on: keep the part a user has (their checkout, a package).
_PATH_RE = re.compile(
    r"(?:/[\w.@+-]+)+/((?:site-packages|dist-packages)/|(?=(?:harness|suites|tests|docs)/[\w./-]+\.\w+)|python3\.\d+/)"
)


def humanise(text: Any) -> str:
    """A message for the main text: without exception class names and pytest's introspection lines."""
    if text is None:
        return ""
    out = str(text)
    out = _INTROSPECTION_RE.sub("", out) if "\n" in out else out

    def strip(m: re.Match[str]) -> str:
        return m.group(0) if m.group(3) in _OCPP_ERROR_CODES else m.group(1)

    return _EXC_RE.sub(strip, out).strip()


def no_machine_paths(text: Any) -> str:
    """*text* with absolute paths shortened to what a user has: "harness/…", "site-packages/…"."""
    return _PATH_RE.sub(lambda m: m.group(1), "" if text is None else str(text))


def technical(text: Any) -> bool:
    """Does the main text lose something that the technical details keep?"""
    return text is not None and humanise(text) != str(text).strip()


def missing(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """The requirements that keep a run from a verdict, each with why in a few words (docs/rules-report.md):
    "not selected", "not run", "rig act skipped", "rig error", "harness error", "not tested"."""
    out: list[dict[str, str]] = []
    groups = {g["id"]: g for g in report.get("groups") or []}
    held_groups = {gid for gid, g in groups.items() if g.get("verdict") == PASS}
    for q in report.get("requirements") or []:
        if not q.get("blocking") and not q.get("or_group"):
            continue
        if q.get("or_group") in held_groups or q.get("verdict") not in (INCOMPLETE, NOT_TESTED):
            continue
        if q.get("or_group") and groups.get(q["or_group"], {}).get("verdict") not in (INCOMPLETE, NOT_TESTED):
            continue
        reason = str(q.get("reason") or "")
        tests = q.get("tests") or []
        why, detail = "not tested", reason
        if not tests and reason.startswith("not selected"):
            why, detail = "not selected", "no test of it was selected in this run"
        else:
            bad = [t for t in tests if t.get("verdict") in (INCOMPLETE, NOT_TESTED)] or tests
            msg = str((bad[0].get("message") if bad else "") or reason)
            low = msg.lower()
            if "harness error" in low:
                why = "harness error"
            elif "rig error" in low:
                why = "rig error"
            elif low.startswith("not run") or any(t.get("outcome") in (Outcome.INTERRUPTED, Outcome.NOT_RUN) for t in bad):
                why = "not run"
            elif "rig cannot" in low or "operator skipped" in low or "[rig." in low:
                why = "rig act skipped"
            detail = humanise(msg)
        out.append({"id": str(q.get("id")), "why": why, "detail": no_machine_paths(detail)})
    return out


#: The headline of each overall verdict, and the words under it.
HEADLINES: dict[str, tuple[str, str]] = {
    CERTIFIED: ("certified", "Every mandatory requirement passed in certification mode."),
    REHEARSAL_PASSED: ("rehearsal passed", "Run in certification mode to certify."),
    NOT_CERTIFIED: ("not certified", "A mandatory requirement failed."),
    Overall.INCOMPLETE: ("incomplete", "No verdict: some mandatory requirements were not judged."),
}


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
    env.filters["human"] = humanise
    env.filters["paths"] = no_machine_paths
    env.globals["frame_views"] = frame_views
    env.globals["technical"] = technical
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

    # Pictures (pure functions of the frames): for each test shown with its evidence.
    by_seq: dict[str | None, dict[int, Mapping[str, Any]]] = {}
    everything = [t for req in report.get("requirements", []) for t in req.get("tests", [])]
    everything += list(report.get("advisory", []))
    for holder in [*everything, *report.get("run_frames", [])]:
        index = by_seq.setdefault(holder.get("worker"), {})
        for f in holder.get("frames") or []:
            if isinstance(f.get("seq"), int):
                index.setdefault(f["seq"], f)
    pictures: dict[str, list[_pictures.Picture]] = {}
    for t in everything:
        if t["nodeid"] not in pictures:
            pictures[t["nodeid"]] = _pictures.pictures_for_test(t, by_seq.get(t.get("worker"), {}))

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
        pictures=pictures,
        headline=HEADLINES.get(str(report.get("overall")), (str(report.get("overall")), "")),
        missing=missing(report),
        failed=[q for q in report.get("requirements", []) if q.get("verdict") == FAIL and q.get("blocking")],
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
        text = m.group(1)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


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
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded
