#!/usr/bin/env python3
"""The harness's speed, in one command:  python benchmarks/bench.py

It measures, in this order (benchmarks/README.md explains each method):

1. the quick certification (`pytest suites/` against the reference charger): its wall time, and
   its floor: the time the run spent waiting on protocol timers (periodic samples, heartbeats, the
   BootNotification Pending interval, the charger's reconnection backoff, NF-2's offline window of
   2.5 sample intervals), measured by instrumenting the harness's waits (this file is also the
   pytest plugin that does it); the ratio wall / floor, and where the rest of the time went;
2. the endpoint's throughput of validated MeterValues frames: through ChargerSession.receive (the
   whole server-side path: parse, validate, track, answer), and over a real TLS WebSocket from a
   client in another process (one charger, and eight at once);
3. the per-frame validation cost: the harness's parse + schema check next to the `ocpp`
   package's (ocpp.messages.unpack + validate_payload, ocpp 2.x);
4. one certification-mode run (`--mode certification`: the platform's real intervals, so 60 s
   sampling): its wall time, bounded by --certification-timeout.

    python benchmarks/bench.py                          # everything (the certification run takes ~20 min)
    python benchmarks/bench.py --skip-certification     # the quick figures only (~1 min)
    python benchmarks/bench.py --json results.json      # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
WAITS_ENV = "EV_ENERGY_BENCH_WAITS"  # where the plugin writes the waits it saw (set: the plugin is on)

# Wait categories. FLOOR: imposed by the protocol's (and the charger's own) timers: the harness cannot
# shorten them without changing the charger or the protocol values it must certify.
SAMPLE = "sample interval"
HEARTBEAT = "heartbeat interval"
BOOT_RETRY = "BootNotification Pending interval"
BACKOFF = "reconnection backoff"
PROTOCOL_WINDOW = "window of protocol length"
FLOOR = (SAMPLE, HEARTBEAT, BOOT_RETRY, BACKOFF, PROTOCOL_WINDOW)
# Not floor: the charger reacting to what the harness did (answers, status changes, the control delay
# after a limit, a reboot, a download), windows the harness chose (expect_none, timeouts), start-up.
REACTION = "charger reaction"
WINDOW = "observation window (harness's choice)"
STARTUP = "first connection and boot"
CATEGORIES = (*FLOOR, REACTION, WINDOW, STARTUP)

# Deliberate sleeps in suites and the metered session whose length the protocol sets (tests/test_no_sleeps.py ALLOWED).
PROTOCOL_WINDOWS = {
    ("harness/metered_session/connection_loss.py", "with_connection_loss"):
        "NF-2 offline window: 2.1 × the charger's sampling period (two samples offline: the EV's pause, then suspended)",
}


# ================================================================================================
# 1a. the pytest plugin: records every wait of the harness (loaded with -p bench, PYTHONPATH=benchmarks)
# ================================================================================================

_current: dict[str, Any] = {"test": "<session>", "phase": "session"}
_records: list[dict[str, Any]] = []
_phases: list[dict[str, Any]] = []
_marks: dict[str, float] = {}
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_inside_wait", default=False)


def _record(kind: str, what: str, start: float, end: float, category: str, outcome: str = "ok") -> None:
    _records.append({"test": _current["test"], "phase": _current["phase"], "kind": kind, "what": what,
                     "start": start, "end": end, "category": category, "outcome": outcome})


def _contexts(call: Any) -> set[Any]:
    out = set()
    for mv in call.payload.get("meterValue") or []:
        if isinstance(mv, dict):
            for sv in mv.get("sampledValue") or []:
                if isinstance(sv, dict):
                    out.add(sv.get("context"))
    return out


def _classify_call(session: Any, call: Any) -> str:
    """What made the charger send `call` when it did: one of its timers, or a reaction."""
    from harness.trace import TX

    if call.action == "MeterValues":
        contexts = _contexts(call)
        if contexts and not contexts - {None, "Sample.Periodic", "Sample.Clock"}:
            return SAMPLE
        return REACTION
    if call.action == "Heartbeat":
        earlier = [c for c in session.received("Heartbeat", since=0) if c.seq < call.seq]
        low = earlier[-1].seq if earlier else 0
        for entry in session.trace.since(low):
            if entry.seq >= call.seq:
                break
            if entry.direction == TX and '"TriggerMessage"' in entry.text and '"Heartbeat"' in entry.text:
                return REACTION
        return HEARTBEAT
    if call.action == "BootNotification":
        earlier = [c for c in session.received("BootNotification", since=0) if c.seq < call.seq]
        if earlier:
            answer = f'[3,"{earlier[-1].unique_id}"'
            for entry in session.trace.since(earlier[-1].seq):
                if entry.seq >= call.seq:
                    break
                if entry.direction == TX and entry.text.startswith(answer):
                    if '"Pending"' in entry.text or '"Rejected"' in entry.text:
                        return BOOT_RETRY
                    break
        return REACTION
    return REACTION


def _install() -> None:
    from harness.endpoint import Endpoint
    from harness.session import ChargerSession
    from harness.trace import EVENT

    expect, expect_none = ChargerSession.expect, ChargerSession.expect_none
    wait_until, wait_attempt = ChargerSession.wait_until, Endpoint.wait_attempt
    sleep = asyncio.sleep

    @functools.wraps(expect)
    async def timed_expect(self: Any, action: str, *args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return await expect(self, action, *args, **kwargs)
        start = time.monotonic()
        try:
            call = await expect(self, action, *args, **kwargs)
        except BaseException:
            _record("expect", action, start, time.monotonic(), WINDOW, "timeout")
            raise
        end = time.monotonic()
        _record("expect", action, start, end, _classify_call(self, call) if call.mono > start else REACTION)
        return call

    @functools.wraps(expect_none)
    async def timed_expect_none(self: Any, action: str, *args: Any, **kwargs: Any) -> Any:
        start, token = time.monotonic(), _inside.set(True)
        try:
            return await expect_none(self, action, *args, **kwargs)
        finally:
            _inside.reset(token)
            _record("expect_none", action, start, time.monotonic(), WINDOW)

    settle_watches = ChargerSession.settle_watches

    @functools.wraps(settle_watches)
    async def timed_settle_watches(self: Any) -> Any:
        start, seq = time.monotonic(), self.trace.next_seq
        try:
            return await settle_watches(self)
        finally:
            end = time.monotonic()
            if end - start > 0.001:
                # A reconnect's Heartbeat check is one of the watches seen out here: when the charger's own Heartbeat
                # ended the wait, the wait was its HeartbeatInterval (a protocol timer), not a window the harness chose.
                last = [c for c in self.received(since=seq) if c.mono <= end + 0.001][-1:]
                heartbeat = bool(last) and last[0].action == "Heartbeat" and _classify_call(self, last[0]) == HEARTBEAT
                _record("settle_watches", "a watch's window", start, end, HEARTBEAT if heartbeat else WINDOW)

    @functools.wraps(wait_until)
    async def timed_wait_until(self: Any, predicate: Any, within: float, what: str) -> Any:
        if _inside.get():
            return await wait_until(self, predicate, within, what)
        start, seq, connections = time.monotonic(), self.trace.next_seq, self.connections
        try:
            result = await wait_until(self, predicate, within, what)
        except BaseException:
            _record("wait_until", what, start, time.monotonic(), WINDOW, "timeout")
            raise
        end = time.monotonic()
        connected = any(e.direction == EVENT and e.text.startswith("connected") for e in self.trace.since(seq))
        if connected:
            category = STARTUP if connections == 0 else BACKOFF
        else:
            category = REACTION
        _record("wait_until", what, start, end, category)
        return result

    @functools.wraps(wait_attempt)
    async def timed_wait_attempt(self: Any, predicate: Any, within: float, since: float = 0.0) -> Any:
        start = time.monotonic()
        attempt = await wait_attempt(self, predicate, within, since)
        end = time.monotonic()
        # The charger's next connection attempt comes when its backoff says so.
        _record("wait_attempt", "a connection attempt", start, end, BACKOFF if attempt is not None else WINDOW,
                "ok" if attempt is not None else "timeout")
        return attempt

    @functools.wraps(sleep)
    async def timed_sleep(delay: float, *args: Any, **kwargs: Any) -> Any:
        frame = sys._getframe(1)
        path = Path(frame.f_code.co_filename)
        try:
            relative = path.resolve().relative_to(ROOT).as_posix()
        except ValueError:
            relative = ""
        if not (relative.startswith("suites/") or relative.startswith("harness/metered_session/")) or delay <= 0:
            return await sleep(delay, *args, **kwargs)
        start = time.monotonic()
        try:
            return await sleep(delay, *args, **kwargs)
        finally:
            site = (relative, frame.f_code.co_name)
            _record("sleep", f"{site[0]}::{site[1]} {delay:g} s", start, time.monotonic(),
                    PROTOCOL_WINDOW if site in PROTOCOL_WINDOWS else WINDOW)

    ChargerSession.expect = timed_expect  # type: ignore[method-assign]
    ChargerSession.expect_none = timed_expect_none  # type: ignore[method-assign]
    ChargerSession.wait_until = timed_wait_until  # type: ignore[method-assign]
    ChargerSession.settle_watches = timed_settle_watches  # type: ignore[method-assign]
    Endpoint.wait_attempt = timed_wait_attempt  # type: ignore[method-assign]
    asyncio.sleep = timed_sleep  # type: ignore[assignment]


def pytest_configure(config: Any) -> None:
    if os.environ.get(WAITS_ENV) and not hasattr(config, "workerinput"):
        _marks["configure"] = time.monotonic()
        _install()


def pytest_sessionstart(session: Any) -> None:
    _marks["sessionstart"] = time.monotonic()


def pytest_collection_finish(session: Any) -> None:
    _marks["collected"] = time.monotonic()


def _phase_wrapper(phase: str):  # noqa: ANN202
    import pytest

    @pytest.hookimpl(wrapper=True)
    def hook(item: Any) -> Any:
        _current.update(test=item.nodeid, phase=phase)
        start = time.monotonic()
        try:
            return (yield)
        finally:
            _phases.append({"test": item.nodeid, "phase": phase, "start": start, "end": time.monotonic()})
            _current.update(test="<session>", phase="session")

    return hook


if os.environ.get(WAITS_ENV):
    pytest_runtest_setup = _phase_wrapper("setup")
    pytest_runtest_call = _phase_wrapper("call")
    pytest_runtest_teardown = _phase_wrapper("teardown")


def pytest_unconfigure(config: Any) -> None:
    path = os.environ.get(WAITS_ENV)
    if not path or hasattr(config, "workerinput"):
        return
    _marks["unconfigure"] = time.monotonic()
    try:
        settings = config.stash[__import__("harness.settings", fromlist=["SETTINGS"]).SETTINGS]
        intervals = {"meter_sample_interval": settings.meter_sample_interval,
                     "heartbeat_interval": settings.heartbeat_interval, "mode": settings.mode}
    except Exception:  # noqa: BLE001
        intervals = {}
    Path(path).write_text(json.dumps({"marks": _marks, "phases": _phases, "waits": _records,
                                      "settings": intervals}), encoding="utf-8")


# ================================================================================================
# 1b. the quick (or certification) run, and its floor
# ================================================================================================


def _union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _length(intervals: Iterable[tuple[float, float]]) -> float:
    return sum(end - start for start, end in intervals)


def _subtract(intervals: list[tuple[float, float]], minus: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in intervals:
        pieces = [(start, end)]
        for m_start, m_end in minus:
            next_pieces = []
            for p_start, p_end in pieces:
                if m_end <= p_start or m_start >= p_end:
                    next_pieces.append((p_start, p_end))
                    continue
                if m_start > p_start:
                    next_pieces.append((p_start, m_start))
                if m_end < p_end:
                    next_pieces.append((m_end, p_end))
            pieces = next_pieces
        out.extend(pieces)
    return out


def _claim(waits: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per category; an instant waited for by several waits counts once, in the first category."""
    claimed: list[tuple[float, float]] = []
    out: dict[str, float] = {}
    for category in CATEGORIES:
        mine = _union((w["start"], w["end"]) for w in waits if w["category"] == category)
        fresh = _subtract(mine, claimed)
        out[category] = _length(fresh)
        claimed = _union([*claimed, *fresh])
    return out


#: Short names of the floor categories, for the critical-path chain.
SHORT = {SAMPLE: "sample", HEARTBEAT: "heartbeat", BOOT_RETRY: "Pending", BACKOFF: "backoff",
         PROTOCOL_WINDOW: "offline window"}


def sum_of_waits(waits: list[dict[str, Any]], evidence: dict[str, float]) -> dict[str, Any]:
    """The sum-of-waits floor: every protocol wait counted in full, overlaps not merged (what the run would take if
    every wait happened one after another), plus the protocol time each requirement's evidence covered when a test
    took it from the run's record instead of waiting (`evidence`: requirement -> seconds)."""
    parts = {c: sum(w["end"] - w["start"] for w in waits if w["category"] == c and w["end"] > w["start"]) for c in FLOOR}
    return {"total": sum(parts.values()) + sum(evidence.values()), "waits": parts, "evidence_windows": evidence}


def critical_path(waits: list[dict[str, Any]]) -> dict[str, Any]:
    """The chain of protocol waits the run sat through one after another: the floor waits merged where they
    overlap (the charger has one link and one connector, so overlapping waits were one wait), in time order.
    Each link is named by the category that claims most of it; consecutive links of one category are one step."""
    floor_waits = [w for w in waits if w["category"] in FLOOR and w["end"] > w["start"]]
    links: list[dict[str, Any]] = []
    for start, end in _union((w["start"], w["end"]) for w in floor_waits):
        inside = [w for w in floor_waits if w["start"] < end and w["end"] > start]
        share = _claim(inside)
        category = max(FLOOR, key=lambda c: share.get(c, 0.0))
        links.append({"start": start, "end": end, "seconds": end - start, "category": category,
                      "tests": sorted({w["test"] for w in inside})})
    steps: list[dict[str, Any]] = []
    for link in links:
        if steps and steps[-1]["category"] == link["category"]:
            steps[-1]["seconds"] += link["seconds"]
            steps[-1]["links"] += 1
            steps[-1]["end"] = link["end"]
        else:
            steps.append({"category": link["category"], "seconds": link["seconds"], "links": 1,
                          "start": link["start"], "end": link["end"]})
    text = " → ".join(f"{SHORT[s['category']]} {_seconds(s['seconds'])}" + (f" (×{s['links']})" if s["links"] > 1 else "")
                      for s in steps)
    return {"total": sum(link["seconds"] for link in links), "steps": steps, "links": len(links), "text": text}


def _seconds(value: float) -> str:
    """A duration for the chain: whole seconds from 10 s, two decimals below, '<0.01 s' for an instant."""
    if value >= 10:
        return f"{value:.0f} s"
    if value >= 0.01:
        return f"{value:.2f}".rstrip("0").rstrip(".") + " s"
    return "<0.01 s"


def evidence_windows(report: dict[str, Any] | None) -> dict[str, float]:
    """Per requirement, the protocol seconds its tests' evidence covered when taken from the run's record without
    waiting: each test may put {"seconds": …, "source": "record"} in its details["evidence_window"]."""
    out: dict[str, float] = defaultdict(float)
    for requirement in (report or {}).get("requirements", []):
        for test in requirement.get("tests", []):
            window = (test.get("details") or {}).get("evidence_window")
            if isinstance(window, dict) and window.get("source") == "record":
                with contextlib.suppress(TypeError, ValueError):
                    out[requirement["id"]] += float(window.get("seconds") or 0.0)
    return dict(out)


def analyse(data: dict[str, Any], process_start: float, process_end: float,
            report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Wall, floor and where the rest went, from the plugin's records."""
    waits = data["waits"]
    per_category = _claim(waits)
    by_test: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for w in waits:
        by_test[w["test"]].append(w)
    marks = data["marks"]
    phases = data["phases"]
    tests: dict[str, float] = defaultdict(float)
    for p in phases:
        tests[p["test"]] += p["end"] - p["start"]
    first = min((p["start"] for p in phases), default=marks.get("collected", process_start))
    last = max((p["end"] for p in phases), default=marks.get("unconfigure", process_end))
    wall = process_end - process_start
    floor = sum(per_category[c] for c in FLOOR)
    in_tests = sum(tests.values())
    waited = sum(per_category.values())
    slowest = sorted(tests.items(), key=lambda kv: -kv[1])[:15]
    summary = []
    for name, seconds in slowest:
        parts = _claim(by_test.get(name, []))
        summary.append({"test": name, "seconds": seconds, "floor": sum(parts[c] for c in FLOOR),
                        "waits": {c: round(v, 3) for c, v in parts.items() if v > 0.0005}})
    charger_waits = floor + per_category[REACTION] + per_category[STARTUP]
    path = critical_path(waits)
    return {
        "wall": wall,
        "floor": floor,
        "ratio": wall / floor if floor else None,
        # #16: the floor if every wait were sat through one after another (plus the evidence taken from the record),
        # the chain the run actually sat through, and wall / that chain.
        "sum_of_waits_floor": sum_of_waits(waits, evidence_windows(report)),
        "critical_path_floor": path["total"],
        "critical_path": path,
        "ratio_critical_path": wall / path["total"] if path["total"] else None,
        # the floor plus what the charger itself took to react (control delay, firmware install, reboots, answers)
        "floor_with_charger": charger_waits,
        "ratio_with_charger": wall / charger_waits if charger_waits else None,
        "floor_parts": {c: per_category[c] for c in FLOOR},
        "other_waits": {c: per_category[c] for c in CATEGORIES if c not in FLOOR},
        "pytest_startup": marks.get("sessionstart", first) - process_start,  # interpreter, imports, plugins
        "until_first_test": first - marks.get("sessionstart", first),  # collection
        "in_tests_not_waiting": in_tests - waited,  # harness and charger CPU, round trips, fixtures
        "between_tests": (last - first) - in_tests,  # pytest's own work between test phases
        "finish": process_end - last,  # session teardown, the report, interpreter exit
        "tests": len(tests),
        "slowest": summary,
        "settings": data.get("settings", {}),
    }


def run_certification(mode: str, timeout: float, work: Path, extra: list[str], certs: Path | None = None) -> dict[str, Any]:
    """One `pytest suites/` run in a fresh process, instrumented; its figures."""
    waits = work / f"waits-{mode}.json"
    report_dir = work / f"report-{mode}"
    env = dict(os.environ)
    # Python's default, as on a manufacturer's machine: modules compiled once, not at every run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env[WAITS_ENV] = str(waits)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider", "-p", "bench",
               "--mode", mode, "--report-dir", str(report_dir), "--certs-dir", str(certs or work / "certs"), *extra]
    start = time.monotonic()
    try:
        proc = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
        output, code, finished = proc.stdout, proc.returncode, True
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code, finished = None, False
    end = time.monotonic()
    result: dict[str, Any] = {"mode": mode, "finished": finished, "exit_status": code, "wall": end - start,
                              "timeout": timeout, "summary": _last_line(output)}
    report = report_dir / "certification.json"
    data: dict[str, Any] | None = None
    if report.exists():
        data = json.loads(report.read_text(encoding="utf-8"))
        result["overall"] = data.get("overall")
        result["report_tests"] = data.get("summary", {}).get("tests")
        result["session_duration"] = data.get("run", {}).get("duration")
    if waits.exists():
        result.update(analyse(json.loads(waits.read_text(encoding="utf-8")), start, end, data))
    if code not in (0, None):
        result["output_tail"] = output[-3000:]
    return result


def _last_line(output: str) -> str:
    lines = [ln.strip("= ") for ln in output.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# ================================================================================================
# 2. throughput of validated MeterValues frames
# ================================================================================================

CHARGER_ID = "BENCH-CP"
KEY = "0123456789abcdef0123456789abcdef01234567"


def meter_values_frame(i: int, tx: int = 1001) -> str:
    """A realistic periodic MeterValues (three-phase charging: energy, power, current and voltage per phase)."""
    from harness import ocppj

    stamp = f"2026-01-01T00:{(i // 60) % 60:02d}:{i % 60:02d}.000Z"

    def sv(measurand: str, value: str, unit: str, phase: str | None = None) -> dict[str, Any]:
        out = {"value": value, "context": "Sample.Periodic", "format": "Raw", "measurand": measurand,
               "location": "Outlet", "unit": unit}
        if phase:
            out["phase"] = phase
        return out

    values = [sv("Energy.Active.Import.Register", str(1_000_000 + 6 * i), "Wh"), sv("Power.Active.Import", "22080.0", "W")]
    values += [sv("Current.Import", "32.0", "A", f"L{p}") for p in (1, 2, 3)]
    values += [sv("Voltage", "230.0", "V", f"L{p}-N") for p in (1, 2, 3)]
    payload = {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": stamp, "sampledValue": values}]}
    return ocppj.encode_json([2, f"mv-{i:08d}", "MeterValues", payload])


class _NullConnection:
    """Stands in for the websockets connection: counts what the session sends back."""

    def __init__(self) -> None:
        self.sent = 0
        self.answered = asyncio.Event()

    async def send(self, text: str) -> None:
        self.sent += 1
        self.answered.set()

    async def close(self, *args: Any) -> None:
        return None


async def _receive_throughput(count: int) -> dict[str, Any]:
    from harness.session import ChargerSession

    session = ChargerSession(CHARGER_ID, KEY)
    connection = _NullConnection()
    session.attach(connection, {"peer": "bench", "tls_version": "TLSv1.2", "cipher": "bench"})
    frames = [meter_values_frame(i) for i in range(count)]
    for text in frames[:50]:  # warm up: schemas loaded, validators built
        connection.answered.clear()
        session.receive(text)
        await connection.answered.wait()
    frames = [meter_values_frame(i) for i in range(50, 50 + count)]
    start = time.perf_counter()
    for text in frames:
        connection.answered.clear()
        session.receive(text)  # parse, validate, record, track, then the platform's answer is sent
        await connection.answered.wait()
    elapsed = time.perf_counter() - start
    assert session.violation_count == 0, [str(v) for v in session.violations[:3]]
    assert connection.sent == count + 50
    return {"frames": count, "seconds": elapsed, "per_second": count / elapsed, "us_per_frame": 1e6 * elapsed / count}


async def _socket_throughput(count: int, connections: int, work: Path) -> dict[str, Any]:
    from harness.endpoint import Endpoint, EndpointConfig

    endpoint = Endpoint(EndpointConfig(certs_dir=work / "certs"))
    await endpoint.start()
    ids = [f"{CHARGER_ID}-{n}" for n in range(connections)]
    for charger_id in ids:
        endpoint.register(charger_id, KEY)
    try:
        command = [sys.executable, str(Path(__file__).resolve()), "--socket-client", endpoint.probe_url("X")[:-2],
                   str(endpoint.certs.ca_pem), str(count), *ids]
        proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 600)
        if proc.returncode != 0:
            raise RuntimeError(f"socket client failed: {err.decode()[-2000:]}")
        result = json.loads(out.decode().strip().splitlines()[-1])
        violations = sum(endpoint.session(i).violation_count for i in ids)
        assert violations == 0, [str(v) for i in ids for v in endpoint.session(i).violations[:2]]
        received = sum(len(endpoint.session(i).received("MeterValues", since=0)) for i in ids)
        result["validated_by_endpoint"] = received
        return result
    finally:
        await endpoint.stop()


async def _socket_client(base_url: str, ca: str, count: int, ids: list[str]) -> None:
    """The charger side of the socket benchmark (a separate process): sequential CALLs per connection."""
    import base64
    import ssl

    from websockets.asyncio.client import connect

    context = ssl.create_default_context(cafile=ca)
    warmup = 50

    async def one(charger_id: str) -> float:
        token = base64.b64encode(f"{charger_id}:{KEY}".encode()).decode()
        async with connect(f"{base_url}/{charger_id}", ssl=context, subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers={"Authorization": f"Basic {token}"}, compression=None,
                           max_size=1 << 20) as ws:
            frames = [meter_values_frame(i).replace('"mv-', f'"{charger_id[-1]}mv-') for i in range(warmup + count)]
            for text in frames[:warmup]:
                await ws.send(text)
                await ws.recv()
            waiting[0] -= 1
            if not waiting[0]:
                warm.set()
            await ready.wait()
            start = time.perf_counter()
            for text in frames[warmup:]:
                await ws.send(text)  # OCPP-J: one outstanding CALL per direction, so wait for each answer
                answer = await ws.recv()
                assert answer.startswith("[3,"), answer
            return time.perf_counter() - start

    ready = asyncio.Event()
    warm = asyncio.Event()
    waiting = [len(ids)]
    tasks = [asyncio.create_task(one(i)) for i in ids]
    await warm.wait()  # every connection is up and warm
    ready.set()
    start = time.perf_counter()
    durations = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    total = count * len(ids)
    print(json.dumps({"connections": len(ids), "frames": total, "seconds": elapsed, "per_second": total / elapsed,
                      "per_connection_per_second": statistics.mean(count / d for d in durations),
                      "round_trip_ms": 1000 * statistics.mean(d / count for d in durations)}))


# ================================================================================================
# 3. per-frame validation cost: the harness next to the `ocpp` package
# ================================================================================================


def validation_cost(repeat: int = 5, number: int = 2000) -> dict[str, Any]:
    import ocpp
    from ocpp import messages

    from harness import ocppj

    text = meter_values_frame(7)
    registry = ocppj.schemas()
    frame = ocppj.parse_frame(text)
    assert not registry.request_problems("MeterValues", frame.payload)

    def harness_parse_validate() -> None:
        f = ocppj.parse_frame(text)
        registry.request_problems(f.action, f.payload)  # type: ignore[union-attr]

    def harness_validate() -> None:
        registry.request_problems("MeterValues", frame.payload)

    def ocpp_unpack_validate() -> None:
        call = messages.unpack(text)
        messages._validate_payload(call, "1.6")  # what validate_payload runs (in an executor by default)

    decoded = messages.unpack(text)

    def ocpp_validate() -> None:
        messages._validate_payload(decoded, "1.6")

    loop = asyncio.new_event_loop()

    def ocpp_validate_payload_async() -> None:  # the public API as the package's CSMS calls it
        loop.run_until_complete(messages.validate_payload(messages.unpack(text), "1.6"))

    def best(fn: Any, n: int = number) -> float:
        fn()
        return min(timeit.repeat(fn, repeat=repeat, number=n)) / n * 1e6

    try:
        result = {
            "ocpp_version": getattr(ocpp, "__version__", None) or _dist_version("ocpp"),
            "frame_bytes": len(text.encode()),
            "harness_parse_and_validate_us": best(harness_parse_validate),
            "harness_validate_us": best(harness_validate),
            "ocpp_unpack_and_validate_us": best(ocpp_unpack_validate),
            "ocpp_validate_us": best(ocpp_validate),
            "ocpp_validate_payload_async_us": best(ocpp_validate_payload_async, max(200, number // 10)),
        }
    finally:
        loop.close()
    return result


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version(name)
    return None


# ================================================================================================
# the command
# ================================================================================================


def _print_run(title: str, r: dict[str, Any]) -> None:
    print(f"\n== {title}")
    if not r.get("finished", True):
        print(f"   did NOT finish within its bound of {r['timeout']:g} s (killed after {r['wall']:.1f} s)")
    print(f"   wall time (process): {r['wall']:.2f} s; exit status {r.get('exit_status')}; {r.get('summary', '')}")
    if r.get("overall"):
        print(f"   report: {r['overall']}; pytest session {r.get('session_duration')} s")
    if "floor" not in r:
        return
    print(f"   floor (protocol timers): {r['floor']:.2f} s  →  wall / floor = "
          + (f"{r['ratio']:.3f}" if r.get("ratio") else "n/a"))
    for c, v in r["floor_parts"].items():
        if v:
            print(f"      {c:40s} {v:7.2f} s")
    sums = r["sum_of_waits_floor"]
    print(f"   sum-of-waits floor (every protocol wait in full, overlaps not merged): {sums['total']:.2f} s")
    for c, v in sums["waits"].items():
        if v:
            print(f"      {c:40s} {v:7.2f} s")
    for requirement, v in sorted(sums["evidence_windows"].items()):
        print(f"      {'evidence from the record, ' + requirement:40s} {v:7.2f} s")
    path = r["critical_path"]
    print(f"   critical-path floor (the waits sat through one after another, {path['links']} link(s)): "
          f"{r['critical_path_floor']:.2f} s  →  wall / critical path = "
          + (f"{r['ratio_critical_path']:.3f}" if r.get("ratio_critical_path") else "n/a"))
    print(f"      {path['text'] or '(none)'}")
    print(f"   floor + the charger's own reaction times: {r['floor_with_charger']:.2f} s  →  wall / that = "
          + (f"{r['ratio_with_charger']:.3f}" if r.get("ratio_with_charger") else "n/a"))
    print("   the rest of the wall time:")
    rest = [
        ("interpreter, imports, plugins", r["pytest_startup"]),
        ("collection, until the first test", r["until_first_test"]),
        *[(f"waiting: {c}", v) for c, v in r["other_waits"].items()],
        ("in tests, other (the harness's requests, CPU, fixtures)", r["in_tests_not_waiting"]),
        ("between tests (pytest)", r["between_tests"]),
        ("after the last test (report, exit)", r["finish"]),
    ]
    for name, value in rest:
        print(f"      {name:62s} {value:7.2f} s")
    print("   slowest tests (seconds, of which floor):")
    for t in r["slowest"][:10]:
        print(f"      {t['seconds']:6.2f} {t['floor']:6.2f}  {t['test']}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--socket-client"]:
        base, ca, count, *ids = argv[1:]
        asyncio.run(_socket_client(base, ca, int(count), ids))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--skip-quick", action="store_true", help="do not run the quick certification")
    parser.add_argument("--skip-throughput", action="store_true", help="do not measure throughput and validation")
    parser.add_argument("--skip-certification", action="store_true", help="do not run the certification-mode run")
    parser.add_argument("--quick-runs", type=int, default=3, help="quick certification runs after the first (the median is shown)")
    parser.add_argument("--certification-timeout", type=float, default=3600.0,
                        help="bound of the certification-mode run, seconds (default 3600)")
    parser.add_argument("--frames", type=int, default=5000, help="MeterValues frames per throughput measurement")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--work-dir", type=Path, help="where reports and certificates go (default: a temp dir)")
    args = parser.parse_args(argv)

    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="bench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                           "platform": sys.platform}}
    print(f"bench: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; work dir {work}")

    if not args.skip_quick:
        # The first run in a checkout compiles the modules and generates the harness CA and certificates
        # (certs/ then persists, as in the README's main job): shown apart, the median is of the runs after.
        certs = work / "certs"
        first = run_certification("quick", 600, work / "quick-first", [], certs)
        results["quick_first_run"] = {k: first.get(k) for k in ("wall", "exit_status", "summary")}
        print(f"\n== first quick run in a fresh checkout (compiles modules, generates certificates): "
              f"{first['wall']:.2f} s, exit status {first.get('exit_status')}")
        runs = [run_certification("quick", 600, work / f"quick-{n}", [], certs) for n in range(args.quick_runs)]
        runs.sort(key=lambda r: r["wall"])
        quick = runs[len(runs) // 2]
        quick["walls"] = [round(r["wall"], 2) for r in runs]
        results["quick"] = quick
        _print_run(f"quick certification: pytest suites/ (median of {len(runs)})", quick)
        if len(runs) > 1:
            print(f"   all walls: {', '.join(f'{w:.1f}' for w in quick['walls'])} s")

    if not args.skip_throughput:
        receive = asyncio.run(_receive_throughput(args.frames))
        results["receive"] = receive
        print(f"\n== MeterValues through ChargerSession.receive (parse, validate, track, answer): "
              f"{receive['per_second']:,.0f} frames/s ({receive['us_per_frame']:.0f} µs per frame)")
        sockets = [asyncio.run(_socket_throughput(max(500, args.frames // n), n, work / "socket")) for n in (1, 8)]
        results["socket"] = sockets
        for s in sockets:
            print(f"== MeterValues over TLS WebSocket, {s['connections']} charger(s), client in another process: "
                  f"{s['per_second']:,.0f} frames/s in all (round trip {s['round_trip_ms']:.2f} ms; "
                  f"{s['validated_by_endpoint']} validated by the endpoint)")
        cost = validation_cost()
        results["validation"] = cost
        print(f"\n== per-frame validation of a {cost['frame_bytes']}-byte MeterValues (µs, best of 5):")
        print(f"   harness  parse_frame + request_problems        {cost['harness_parse_and_validate_us']:7.1f}"
              f"   (schema check alone {cost['harness_validate_us']:.1f})")
        print(f"   ocpp {cost['ocpp_version']}  unpack + _validate_payload            {cost['ocpp_unpack_and_validate_us']:7.1f}"
              f"   (schema check alone {cost['ocpp_validate_us']:.1f})")
        print(f"   ocpp {cost['ocpp_version']}  await validate_payload (executor)      {cost['ocpp_validate_payload_async_us']:7.1f}")

    if not args.skip_certification:
        print(f"\n(certification-mode run: the platform's real intervals, bounded by {args.certification_timeout:g} s …)",
              flush=True)
        cert = run_certification("certification", args.certification_timeout, work / "certification", [])
        results["certification"] = cert
        _print_run("certification mode: pytest suites/ --mode certification", cert)

    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
        print(f"\nbench: figures written to {args.json}")
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
