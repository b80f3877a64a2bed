"""The charger backends a manufacturer uses on the bench: command, manual and http.

Unit tests drive each backend alone; the end-to-end tests run a whole harness (a pytest
subprocess) against the reference charger started as a bench charger (`python -m harness.sim`
with its HTTP control server), through each backend:
- http: the control server directly;
- command: tests/rig_script.py, one shell command per act, from a charger profile;
- manual: an "operator" reading the prompts from the harness's output and answering on its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.drivers.base import ActNotSupported, RigError
from harness.drivers.command import CommandBackend
from harness.drivers.manual import ManualBackend, StreamConsole

ROOT = Path(__file__).resolve().parents[1]
RIG_SCRIPT = ROOT / "tests" / "rig_script.py"
KEY = "00112233445566778899aabbccddeeff00112233"

aio = pytest.mark.asyncio(loop_scope="session")


# --- command backend ------------------------------------------------------------------------------


def _endpoint_info(**kw: Any) -> Any:
    from harness.drivers.base import EndpointInfo

    values = dict(url="wss://127.0.0.1:9/ocpp", charger_id="CP-CMD", authorization_key=KEY, ca_file="/ca.pem",
                  security_profile=2)
    values.update(kw)
    return EndpointInfo(**values)


@aio
async def test_command_runs_in_the_profile_folder_with_quoted_placeholders_and_environment(tmp_path: Path) -> None:
    backend = CommandBackend(
        {
            "plugin": "echo plug {connector} {charger_id} >> log.txt",
            "authorize": "printf '%s\\n' {id_tag} > tag.txt",
            "network": 'echo "{online} $HARNESS_ACT $HARNESS_ONLINE $HARNESS_CHARGER_ID" > net.txt',
            "ev_suspend": "echo {suspended} {connector} > ev.txt",
            "fault": "echo {faulted} > fault.txt",
        },
        timeout=10,
        cwd=tmp_path,
        charger_id="CP-CMD",
    )
    await backend.plugin(2)
    tag = "TAG 1'; touch pwned; echo '"
    await backend.authorize(tag, 1)
    await backend.network(False)
    await backend.ev_suspend(True, 1)
    await backend.fault(False, 1)
    assert (tmp_path / "log.txt").read_text() == "plug 2 CP-CMD\n"
    assert (tmp_path / "tag.txt").read_text() == tag + "\n", "substituted values are shell-quoted"
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "net.txt").read_text() == "false network false CP-CMD\n"
    assert (tmp_path / "ev.txt").read_text() == "true 1\n"
    assert (tmp_path / "fault.txt").read_text() == "false\n"
    assert [(act, code) for act, _cmd, code in backend.history] == [
        ("plugin", 0), ("authorize", 0), ("network", 0), ("ev_suspend", 0), ("fault", 0)
    ]


@aio
async def test_a_failing_command_is_a_rig_error_showing_its_output(tmp_path: Path) -> None:
    backend = CommandBackend({"plugin": "echo relay board says no; echo 'E42 contactor' >&2; exit 4"}, cwd=tmp_path)
    with pytest.raises(RigError) as caught:
        await backend.plugin(1)
    message = str(caught.value)
    assert "rig command for 'plugin' failed with exit status 4" in message
    assert "relay board says no" in message and "E42 contactor" in message
    assert "echo relay board says no" in message, "the command itself is shown"


@aio
async def test_an_act_without_a_command_is_not_tested(tmp_path: Path) -> None:
    from harness.rig import Rig

    backend = CommandBackend({"plugin": "true"}, cwd=tmp_path)
    with pytest.raises(ActNotSupported, match="no \\[rig.command\\] reboot command"):
        await backend.reboot()
    session = SimpleNamespace(trace=SimpleNamespace(event=lambda text: None))
    with pytest.raises(pytest.skip.Exception, match="not tested"):
        await Rig(backend, session).reboot()  # type: ignore[arg-type]


@aio
async def test_a_command_that_hangs_is_killed_with_its_children_at_the_timeout(tmp_path: Path) -> None:
    backend = CommandBackend({"reboot": "echo powering; sleep 30 & echo $! > child.pid; wait"}, timeout=0.5, cwd=tmp_path)
    started = time.monotonic()
    with pytest.raises(RigError) as caught:
        await backend.reboot()
    assert time.monotonic() - started < 5
    assert "did not finish within 0.5 s (killed)" in str(caught.value) and "powering" in str(caught.value)
    child = int((tmp_path / "child.pid").read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the command's child survived the timeout")


@aio
async def test_start_and_stop_hooks_get_the_url_and_the_key_only_in_the_environment(tmp_path: Path) -> None:
    backend = CommandBackend(
        {
            "start": 'echo {url} {ca_file} {security_profile} > start.txt; echo "$HARNESS_AUTHORIZATION_KEY" > key.txt; sleep 5 &',
            "stop": "echo stopped > stop.txt",
        },
        cwd=tmp_path,
    )
    started = time.monotonic()
    await backend.start(_endpoint_info())
    assert time.monotonic() - started < 4, "a background child holding the output must not block the hook"
    assert (tmp_path / "start.txt").read_text() == "wss://127.0.0.1:9/ocpp /ca.pem 2\n"
    assert (tmp_path / "key.txt").read_text() == KEY + "\n"
    await backend.stop()
    assert (tmp_path / "stop.txt").read_text() == "stopped\n"
    failing = CommandBackend({"start": 'echo "key is $HARNESS_AUTHORIZATION_KEY"; exit 1'}, cwd=tmp_path)
    with pytest.raises(RigError) as caught:
        await failing.start(_endpoint_info())
    assert KEY not in str(caught.value) and "key is <redacted>" in str(caught.value)



@aio
async def test_start_gets_the_ca_as_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--certs-dir certs` is relative to where the harness runs; the hook runs in the profile's folder."""
    monkeypatch.chdir(tmp_path)
    profile_folder = tmp_path / "examples"
    profile_folder.mkdir()
    backend = CommandBackend({"start": "echo {ca_file} > ca.txt; echo $HARNESS_CA_FILE >> ca.txt"}, cwd=profile_folder)
    await backend.start(_endpoint_info(ca_file="certs/ca.pem"))
    assert (profile_folder / "ca.txt").read_text().split() == [str(tmp_path / "certs" / "ca.pem")] * 2

# --- manual backend (unit) ------------------------------------------------------------------------


class FakeSession:
    """Just what the manual backend reads from a ChargerSession."""

    def __init__(self) -> None:
        self.trace = SimpleNamespace(next_seq=1)
        self.calls: list[Any] = []
        self.connected = True
        self.connections = 1

    def add(self, action: str, **payload: Any) -> None:
        self.calls.append(SimpleNamespace(seq=self.trace.next_seq, action=action, payload=payload, get=payload.get))
        self.trace.next_seq += 1

    def received(self, action: str | None = None, since: int | None = None) -> list[Any]:
        return [c for c in self.calls if c.seq >= (since or 0) and (action is None or c.action == action)]


@contextlib.contextmanager
def operator_pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    try:
        yield read, write
    finally:
        for fd in (read, write):
            with contextlib.suppress(OSError):
                os.close(fd)


def manual(read_fd: int, timeout: float = 5.0) -> tuple[ManualBackend, io.StringIO, FakeSession]:
    out = io.StringIO()
    backend = ManualBackend(StreamConsole(out, read_fd), timeout=timeout, charger_id="CP-MAN")
    session = FakeSession()
    backend.attach(session)  # type: ignore[arg-type]
    return backend, out, session


async def _prompted(out: io.StringIO, text: str, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while text not in out.getvalue():
        assert time.monotonic() < deadline, f"no prompt {text!r}; output:\n{out.getvalue()}"
        await asyncio.sleep(0.02)


@aio
async def test_manual_goes_on_as_soon_as_the_charger_reports_the_act() -> None:
    with operator_pipe() as (read, _write):
        backend, out, session = manual(read)
        session.add("StatusNotification", connectorId=1, status="Preparing")  # before the prompt: does not count
        task = asyncio.ensure_future(backend.plugin(1))
        await _prompted(out, "Plug the EV into connector 1")
        await asyncio.sleep(0.3)
        assert not task.done(), "a status sent before the prompt is no evidence"
        session.add("StatusNotification", connectorId=2, status="Preparing")  # another connector
        session.add("StatusNotification", connectorId=1, status="Charging")
        await asyncio.wait_for(task, 2)
    text = out.getvalue()
    assert "[harness] ACT  Plug the EV into connector 1" in text
    assert "goes on by itself once the charger sends a StatusNotification Preparing, Charging, SuspendedEV or SuspendedEVSE on connector 1" in text
    assert "Enter = done, s + Enter = skip" in text
    assert re.search(r"\[harness\]\s+5 s left", text), "the countdown starts at the timeout"
    assert "seen: StatusNotification Charging on connector 1" in text
    assert backend.history == [("plugin", "seen StatusNotification Charging on connector 1")]


@pytest.mark.parametrize(
    ("act", "evidence", "seen"),
    [
        (lambda b: b.plugout(1), lambda s: s.add("StatusNotification", connectorId=1, status="Finishing"), "Finishing"),
        (lambda b: b.authorize("TAG-9", 1), lambda s: s.add("Authorize", idTag="TAG-9"), "Authorize with idTag TAG-9"),
        (lambda b: b.authorize("TAG-9", 1), lambda s: s.add("StartTransaction", idTag="TAG-9", connectorId=1),
         "StartTransaction with idTag TAG-9"),
        (lambda b: b.ev_suspend(True, 1), lambda s: s.add("StatusNotification", connectorId=1, status="SuspendedEV"),
         "SuspendedEV"),
        (lambda b: b.ev_suspend(False, 1), lambda s: s.add("StatusNotification", connectorId=1, status="Charging"),
         "Charging"),
        (lambda b: b.fault(True, 1), lambda s: s.add("StatusNotification", connectorId=0, status="Faulted"), "Faulted"),
        (lambda b: b.fault(False, 1), lambda s: s.add("StatusNotification", connectorId=1, status="Available"),
         "Available"),
        (lambda b: b.reboot(), lambda s: s.add("BootNotification", chargePointVendor="x", chargePointModel="y"),
         "BootNotification"),
        (lambda b: b.network(False), lambda s: setattr(s, "connected", False), "the charger disconnected"),
    ],
)
@aio
async def test_manual_evidence_for_each_act(act: Any, evidence: Any, seen: str) -> None:
    with operator_pipe() as (read, _write):
        backend, out, session = manual(read)
        task = asyncio.ensure_future(act(backend))
        await _prompted(out, "[harness] ACT")
        evidence(session)
        await asyncio.wait_for(task, 2)
    assert seen in out.getvalue()


@aio
async def test_manual_network_on_needs_a_new_connection() -> None:
    with operator_pipe() as (read, _write):
        backend, out, session = manual(read)
        task = asyncio.ensure_future(backend.network(True))
        await _prompted(out, "Restore the charger's network")
        await asyncio.sleep(0.3)
        assert not task.done(), "still connected on the old connection: no evidence yet"
        session.connections += 1
        await asyncio.wait_for(task, 2)
    assert "the charger connected again" in out.getvalue()


@aio
async def test_manual_enter_confirms_and_s_skips() -> None:
    with operator_pipe() as (read, write):
        backend, out, _session = manual(read)
        task = asyncio.ensure_future(backend.fault(True, 1))
        await _prompted(out, "Raise a fault on connector 1")
        os.write(write, b"\n")
        await asyncio.wait_for(task, 2)
        assert "done (Enter)" in out.getvalue()

        task = asyncio.ensure_future(backend.reboot())
        await _prompted(out, "Power-cycle the charger")
        os.write(write, b"s\n")
        with pytest.raises(ActNotSupported, match="the operator skipped 'Power-cycle the charger"):
            await asyncio.wait_for(task, 2)
    assert backend.history == [("fault", "confirmed"), ("reboot", "skipped")]


@aio
async def test_manual_scripted_lines_answer_prompts_in_order() -> None:
    with operator_pipe() as (read, write):
        backend, out, _session = manual(read)
        os.write(write, b"\nskip\n")  # typed ahead on a pipe: kept for the next prompts
        await asyncio.wait_for(backend.plugin(1), 2)
        with pytest.raises(ActNotSupported):
            await asyncio.wait_for(backend.plugout(1), 2)


@aio
async def test_manual_times_out_with_a_rig_error_when_nothing_happens() -> None:
    with operator_pipe() as (read, write):
        os.close(write)  # stdin at its end: nobody will press Enter
        backend, out, _session = manual(read, timeout=0.6)
        started = time.monotonic()
        with pytest.raises(RigError) as caught:
            await backend.plugin(1)
        assert time.monotonic() - started < 3
    message = str(caught.value)
    assert "'Plug the EV into connector 1' did not happen within 0.6 s" in message
    assert "waiting until the charger sends a StatusNotification Preparing" in message
    assert "nobody pressed Enter" in message


@aio
async def test_manual_reads_a_regular_file_as_stdin(tmp_path: Path) -> None:
    answers = tmp_path / "answers.txt"
    answers.write_text("\ns\n")
    with answers.open("rb") as handle:
        backend, _out, _session = manual(handle.fileno())
        await asyncio.wait_for(backend.plugin(1), 2)
        with pytest.raises(ActNotSupported):
            await asyncio.wait_for(backend.reboot(), 2)


# --- end to end against the reference charger ------------------------------------------------------

ACTS_TEST = '''
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

PLUGGED = ("Preparing", "Charging", "SuspendedEV", "SuspendedEVSE")


async def test_a_charging_session_with_a_pause(charger):
    rig = charger.rig
    since = charger.trace.next_seq
    await rig.plugin(1)
    await charger.expect("StatusNotification", where=lambda c: c["connectorId"] == 1 and c["status"] in PLUGGED,
                         since=since, within=15)
    card = charger.platform.id_tag
    await rig.authorize(card, 1)
    start = await charger.expect("StartTransaction", where={"connectorId": 1, "idTag": card}, since=since, within=15)
    await charger.expect("StatusNotification", where={"connectorId": 1, "status": "Charging"}, since=since, within=15)
    await rig.ev_suspend(True, 1)
    paused = await charger.expect("StatusNotification", where={"connectorId": 1, "status": "SuspendedEV"},
                                  since=since, within=15)
    await rig.ev_suspend(False, 1)
    await charger.expect("StatusNotification", where={"connectorId": 1, "status": "Charging"}, since=paused.seq,
                         within=15)
    await rig.plugout(1)
    await charger.expect("StopTransaction", since=start.seq, within=15)
    await charger.expect("StatusNotification", where={"connectorId": 1, "status": "Available"}, since=start.seq,
                         within=15)


async def test_a_fault_raised_and_cleared(charger):
    rig = charger.rig
    since = charger.trace.next_seq
    await rig.fault(True, 1)
    faulted = await charger.expect("StatusNotification", where={"connectorId": 1, "status": "Faulted"}, since=since,
                                   within=15)
    await rig.fault(False, 1)
    await charger.expect("StatusNotification", where={"connectorId": 1, "status": "Available"}, since=faulted.seq,
                         within=15)


async def test_network_off_and_on(charger):
    rig = charger.rig
    await rig.network(False)
    await charger.wait_disconnected(15)
    await rig.network(True)
    await charger.wait_connected(30)


async def test_power_cycle(charger):
    since = charger.trace.next_seq
    await charger.rig.reboot()
    await charger.expect("BootNotification", since=since, within=30)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchCharger:
    """`python -m harness.sim` in a subprocess, dialling the harness, with its control API."""

    def __init__(self, certs_dir: Path, csms_port: int, charger_id: str, password: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness.sim", "--url", f"wss://127.0.0.1:{csms_port}/ocpp", "--id", charger_id,
             "--ca", str(certs_dir / "ca.pem"), "--password", password, "--control-port", "0", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        )
        self.lines: list[str] = []
        self.control_url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(30) or self.control_url is None:
            self.close()
            raise AssertionError("the bench charger did not start:\n" + "\n".join(self.lines))

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = re.match(r"control API: (http://\S+)", line)
            if match:
                self.control_url = match.group(1).rstrip("/")
                self._ready.set()
        self._ready.set()

    def post(self, path: str) -> None:
        assert self.control_url is not None
        request = urllib.request.Request(f"{self.control_url}/{path}", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def bench(certs_dir: Path) -> Iterator[Any]:
    started: list[BenchCharger] = []

    def start(charger_id: str, password: str = KEY) -> tuple[BenchCharger, int]:
        port = _free_port()
        charger = BenchCharger(certs_dir, port, charger_id, password)
        started.append(charger)
        return charger, port

    yield start
    for charger in started:
        charger.close()


def _common(certs_dir: Path, port: int, charger_id: str) -> list[str]:
    return ["--certs-dir", str(certs_dir), "--csms-port", str(port), "--charger-id", charger_id,
            "--mode", "quick", "--connect-timeout", "30", "-p", "no:cacheprovider"]


def test_http_backend_against_the_reference_charger(pytester: pytest.Pytester, bench: Any, certs_dir: Path) -> None:
    charger, port = bench("CP-E2E-HTTP")
    pytester.makepyfile(test_acts=ACTS_TEST)
    result = pytester.runpytest_subprocess(
        *_common(certs_dir, port, "CP-E2E-HTTP"), "--charger", "http", "--charger-control-url", charger.control_url,
        "--authorization-key", KEY, timeout=240,
    )
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=4)
    assert "charger: http at " + str(charger.control_url) in output
    assert "waiting up to 30 s for charger 'CP-E2E-HTTP' to connect and boot" in output
    assert "password = the AuthorizationKey from --authorization-key on the command line" in output
    assert KEY not in output


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_command_backend_against_the_reference_charger(
    pytester: pytest.Pytester, bench: Any, certs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    charger, port = bench("CP-E2E-CMD")
    rig = f"{shlex.quote(sys.executable)} {shlex.quote(str(RIG_SCRIPT))} --url {charger.control_url}"
    commands = {
        "plugin": f"{rig} plugin {{connector}}",
        "plugout": f"{rig} plugout {{connector}}",
        "authorize": f"{rig} authorize {{id_tag}} {{connector}}",
        "ev_suspend": f"{rig} ev {{connector}} {{suspended}}",
        "fault": f"{rig} state {{connector}} {{faulted}}",
        "network": f"{rig} network {{online}}",
        # no reboot command: that act is "not tested"
    }
    profile = "\n".join(
        [
            "[charger]",
            'id = "CP-E2E-CMD"',
            'authorization_key_env = "E2E_CHARGER_KEY"',
            "connectors = 1",
            "[endpoint]",
            f"port = {port}",
            "[rig]",
            'backend = "command"',
            "[rig.command]",
            "timeout = 20",
            *(f"{act} = {_toml(cmd)}" for act, cmd in commands.items()),
        ]
    )
    (pytester.path / "charger.toml").write_text(profile + "\n")
    monkeypatch.setenv("E2E_CHARGER_KEY", KEY)
    pytester.makepyfile(test_acts=ACTS_TEST)
    result = pytester.runpytest_subprocess(
        "--charger-profile", "charger.toml", "--certs-dir", str(certs_dir), "--mode", "quick", "-rs",
        "-p", "no:cacheprovider", timeout=240,
    )
    output = result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=3, skipped=1)
    assert ("not tested: the rig cannot perform the act 'reboot' (power-cycle the charger): the charger profile has "
            "no [rig.command] reboot command") in output
    assert "password = the AuthorizationKey from the environment variable E2E_CHARGER_KEY" in output
    assert KEY not in output


class Operator:
    """Reads the harness's output; does what each prompt asks on the bench charger, like a person would."""

    def __init__(self, process: subprocess.Popen[bytes], charger: BenchCharger) -> None:
        self.process = process
        self.charger = charger
        self.lines: list[str] = []
        self.done: list[str] = []
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def type(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def _run(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            match = re.search(r"\[harness\] ACT  (.*)$", line)
            if not match:
                continue
            instruction = match.group(1)
            try:
                self._act(instruction)
                self.done.append(instruction)
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(f"{instruction}: {exc!r}")

    def _act(self, instruction: str) -> None:
        number = re.search(r"connector (\d+)", instruction)
        connector = number.group(1) if number else "1"
        if instruction.startswith("Plug the EV"):
            self.charger.post(f"plugin?connector={connector}")  # no Enter: the harness sees it itself
        elif instruction.startswith("Unplug the EV"):
            self.charger.post(f"plugout?connector={connector}")
        elif instruction.startswith("Present the RFID card"):
            tag = re.search(r"idTag (\S+)", instruction).group(1)  # type: ignore[union-attr]
            self.charger.post(f"authorize?id={tag}&connector={connector}")
        elif "stop drawing power" in instruction:
            self.charger.post(f"ev?connector={connector}&suspended=true")
        elif "resume drawing power" in instruction:
            self.charger.post(f"ev?connector={connector}&suspended=false")
            self.type("\n")  # and says so (Enter), whichever the harness notices first
        elif instruction.startswith("Raise a fault"):
            self.charger.post(f"state?connector={connector}&faulted=true")
            self.type("\n")
        elif instruction.startswith("Clear the fault"):
            self.charger.post(f"state?connector={connector}&faulted=false")
        elif instruction.startswith("Cut the charger's network"):
            self.charger.post("network?online=false")
        elif instruction.startswith("Restore the charger's network"):
            self.charger.post("network?online=true")
        elif instruction.startswith("Power-cycle"):
            self.type("s\n")  # this operator cannot: skipped, "not tested"
        else:
            raise AssertionError(f"unknown instruction {instruction!r}")


def test_manual_backend_with_an_operator_on_stdin(pytester: pytest.Pytester, bench: Any, certs_dir: Path) -> None:
    """Prompts reach the operator under pytest's default (fd) output capture, and answers on stdin reach the harness."""
    charger, port = bench("CP-E2E-MAN")
    pytester.makepyfile(test_acts=ACTS_TEST)
    process = pytester.popen(
        [sys.executable, "-m", "pytest", *_common(certs_dir, port, "CP-E2E-MAN"), "--charger", "manual",
         "--authorization-key", KEY, "-rs", "-o", "console_output_style=classic", "test_acts.py"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    operator = Operator(process, charger)
    try:
        process.wait(240)
    finally:
        if process.poll() is None:
            process.kill()
    operator.thread.join(10)
    output = "\n".join(operator.lines)
    assert not operator.errors, operator.errors
    assert re.search(r"3 passed, 1 skipped", output), output
    assert operator.done[:2] == ["Plug the EV into connector 1", "Present the RFID card with idTag EVENERGY-TAG-1 at connector 1"]
    assert "Power-cycle the charger (switch it off, wait a few seconds, switch it on)" in operator.done
    assert "seen: StatusNotification Preparing on connector 1" in output, output
    assert "seen: StartTransaction with idTag EVENERGY-TAG-1" in output or "seen: Authorize with idTag EVENERGY-TAG-1" in output
    assert "seen: the charger disconnected" in output and "seen: the charger connected again" in output
    assert "skipped by the operator" in output
    assert "not tested: the rig cannot perform the act 'reboot' (power-cycle the charger): the operator skipped" in output
    assert "manual rig: you will be asked for physical acts on charger 'CP-E2E-MAN'" in output
    assert KEY not in output


def test_waiting_shows_what_to_configure_and_every_refused_attempt(
    pytester: pytest.Pytester, bench: Any, certs_dir: Path
) -> None:
    """A charger with the wrong key: the operator sees URL, id, where the key comes from, and each 401 as it happens."""
    charger, port = bench("CP-E2E-WRONG", password="ff" * 20)
    pytester.makepyfile(test_acts=ACTS_TEST)
    result = pytester.runpytest_subprocess(
        *_common(certs_dir, port, "CP-E2E-WRONG"), "--charger", "http", "--charger-control-url", charger.control_url,
        "--authorization-key", KEY, "--connect-timeout", "4", timeout=120,
    )
    output = result.stdout.str() + result.stderr.str()
    assert f"URL:  wss://127.0.0.1:{port}/ocpp/CP-E2E-WRONG" in output
    assert "user 'CP-E2E-WRONG', password = the AuthorizationKey from --authorization-key on the command line" in output
    refused = [line for line in result.stdout.lines if "connection attempt refused" in line]
    assert refused, output
    assert "unauthorized HTTP 401: security profile 2: wrong password" in refused[0]
    # shown while waiting, before the first test's verdict
    first_refusal = output.index("connection attempt refused")
    assert first_refusal < output.index("charger never connected")
    assert KEY not in output and "ff" * 20 not in output


@pytest.mark.parametrize("rig", ["http", "command without reboot"])
def test_a_charger_already_running_is_power_cycled_so_the_run_starts_from_its_boot(
    pytester: pytest.Pytester, bench: Any, certs_dir: Path, monkeypatch: pytest.MonkeyPatch, rig: str
) -> None:
    """The README's path: `serve` brings the charger up, Ctrl-C, then the suites. The charger reconnects
    without a BootNotification (OCPP 1.6 allows it); the harness power-cycles it through the rig, or,
    when the rig cannot, asks for a BootNotification with TriggerMessage."""
    charger, port = bench("CP-E2E-UP")
    serve = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", "--csms-port", str(port), "--charger-id", "CP-E2E-UP",
         "--authorization-key", KEY, "--certs-dir", str(certs_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )
    try:
        assert serve.stdout is not None
        deadline = time.monotonic() + 30
        for line in serve.stdout:
            if '"BootNotification"' in line or time.monotonic() > deadline:
                break
    finally:
        serve.send_signal(2)
        serve.wait(15)
    pytester.makepyfile(
        test_up="""
        import pytest
        pytestmark = pytest.mark.asyncio(loop_scope="session")

        async def test_booted_in_this_run(charger):
            assert charger.received("BootNotification", since=0)
        """
    )
    if rig == "http":
        backend = ["--charger", "http", "--charger-control-url", str(charger.control_url)]
        expected = "power-cycling it through the rig"
    else:
        script = f"{shlex.quote(sys.executable)} {shlex.quote(str(RIG_SCRIPT))} --url {charger.control_url}"
        (pytester.path / "charger.toml").write_text(
            f'[rig]\nbackend = "command"\n[rig.command]\nplugin = {_toml(script + " plugin {connector}")}\n'
        )
        backend = ["--charger-profile", "charger.toml"]
        expected = "asking for a BootNotification with TriggerMessage"
    result = pytester.runpytest_subprocess(
        *_common(certs_dir, port, "CP-E2E-UP"), *backend, "--authorization-key", KEY, timeout=120
    )
    output = result.stdout.str()
    result.assert_outcomes(passed=1)
    assert "connected without a BootNotification (it was already running)" in output
    assert expected in output


def test_only_a_person_gets_time_beyond_the_test_bound() -> None:
    from harness.drivers.sim import SimBackend

    assert ManualBackend(StreamConsole(io.StringIO(), 0), timeout=42.0).act_allowance == 42.0  # its (scaled) prompt timeout
    assert SimBackend().act_allowance == 0.0
    assert CommandBackend({"plugin": "true"}).act_allowance == 0.0
