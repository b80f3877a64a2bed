"""Ctrl-C and SIGTERM end a run within 2 s in every backend, with an "incomplete (interrupted)" report
(docs/rules-first-hour.md). Real signals sent to a real pytest subprocess; the charger is the reference charger,
in-process for `sim`, started as a bench charger (`python -m harness.sim --control-port`) for the others.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import KEY
from tests.test_backends import BenchCharger, _free_port, _toml

ROOT = Path(__file__).resolve().parent.parent

SUITE = '''
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.requirement("CORE-1")
async def test_first_passes(charger):
    assert charger.boot is not None


@pytest.mark.requirement("CORE-1")
async def test_second_waits(charger):
    ACT
'''
WAITS = {
    # what the second test waits on, per backend: a frame nobody sends, or a rig act
    "sim": 'print("HARNESS-TEST-WAITING", flush=True)\n    await charger.expect("DataTransfer", within=120)',
    "http": 'print("HARNESS-TEST-WAITING", flush=True)\n    await charger.expect("DataTransfer", within=120)',
    "command": "await charger.rig.plugin(1)",
    # the operator confirms the plug-in (Enter); Ctrl-C comes at the next prompt: the EV is plugged in, so a
    # tear-down that put the bench back (the fixture's, or the test's own `finally`, run when the stopped test is
    # cancelled) would prompt again and wait for the operator
    "manual": 'await charger.rig.plugin(1)\n    try:\n        await charger.rig.authorize("EVENERGY-TAG-1", 1)\n'
              '    finally:\n        await charger.rig.plugout(1)',
}


class Run:
    """A pytest subprocess whose output is read line by line (stdin a pipe: the manual operator's)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None, group: bool = False) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        environment["PYTHONPATH"] = f"{ROOT}{os.pathsep}{environment.get('PYTHONPATH', '')}"
        environment.update(env or {})
        self.process = subprocess.Popen(
            # hypothesis (a test dependency of the harness, not of a certification run) imports itself in its
            # terminal summary: a second under load that a user's run does not have.
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-s", *args],
            cwd=cwd, env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=group,  # a group of its own: a terminal's Ctrl-C reaches all of it
        )
        self.group = group
        self.lines: list[str] = []
        self._seen = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, text: str, within: float) -> None:
        with self._seen:
            ok = self._seen.wait_for(lambda: any(text in ln for ln in self.lines) or self.process.poll() is not None, within)
        assert ok and any(text in ln for ln in self.lines), f"no {text!r} within {within} s:\n" + self.output

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def signal_and_time(self, signum: int, again_after: float | None = None) -> float:
        """Send `signum`; the seconds until the process exited."""
        start = time.monotonic()
        send = (lambda: os.killpg(self.process.pid, signum)) if self.group else (lambda: self.process.send_signal(signum))
        send()
        if again_after is not None:
            time.sleep(again_after)  # the second Ctrl-C of an impatient user comes a moment after the first
            send()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError("still running 30 s after the signal:\n" + self.output) from None
        return time.monotonic() - start

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def run_with(tmp_path: Path, certs_dir: Path) -> Iterator[Callable[[str], tuple[Run, Path]]]:
    started: list[Any] = []

    def start(backend: str) -> tuple[Run, Path]:
        (tmp_path / "test_interrupted.py").write_text(SUITE.replace("ACT", WAITS[backend]))
        reports = tmp_path / "reports"
        args = ["--certs-dir", str(certs_dir), "--report-dir", str(reports), "--mode", "quick",
                "--connect-timeout", "30", "test_interrupted.py"]
        env: dict[str, str] = {}
        if backend != "sim":
            port = _free_port()
            bench = BenchCharger(certs_dir, port, "CP-INT", KEY)
            started.append(bench)
            args += ["--csms-port", str(port), "--charger-id", "CP-INT", "--authorization-key", KEY]
            if backend == "http":
                args += ["--charger", "http", "--charger-control-url", str(bench.control_url)]
            elif backend == "manual":
                args += ["--charger", "manual"]
            else:  # a rig command that takes its time
                marker = tmp_path / "rig-started"
                plugin = f"touch {shlex.quote(str(marker))}; sleep 60"
                (tmp_path / "charger.toml").write_text(
                    "\n".join(["[rig]", 'backend = "command"', "[rig.command]", "timeout = 120",
                               f"plugin = {_toml(plugin)}", 'plugout = "true"']) + "\n"
                )
                args += ["--charger-profile", str(tmp_path / "charger.toml")]
        run = Run(args, tmp_path, env)
        started.append(run)
        return run, reports

    yield start
    for thing in started:
        thing.close()


def _wait_until_second_test_waits(run: Run, backend: str, tmp: Path) -> None:
    if backend == "command":
        marker = tmp / "rig-started"
        deadline = time.monotonic() + 120
        while not marker.exists():  # the rig command itself says it runs: a file it creates
            assert run.process.poll() is None and time.monotonic() < deadline, run.output
            threading.Event().wait(0.05)
    elif backend == "manual":
        run.wait_for("ACT  Plug the EV into connector 1", 120)
        assert run.process.stdin is not None
        run.process.stdin.write("\n")  # done
        run.process.stdin.flush()
        run.wait_for("ACT  Present the RFID card", 60)
    else:
        run.wait_for("HARNESS-TEST-WAITING", 120)


def _report(reports: Path) -> dict[str, Any]:
    return json.loads((reports / "certification.json").read_text(encoding="utf-8"))


def _tests(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each test of the report by its name."""
    return {t["nodeid"].rsplit("::", 1)[-1]: t for r in report["requirements"] for t in r["tests"]}


@pytest.mark.parametrize("backend", ["sim", "http", "command", "manual"])
def test_one_ctrl_c_ends_the_run_within_2_s_with_an_interrupted_report(
    run_with: Callable[[str], tuple[Run, Path]], backend: str, tmp_path: Path
) -> None:
    run, reports = run_with(backend)
    _wait_until_second_test_waits(run, backend, tmp_path)
    took = run.signal_and_time(signal.SIGINT)
    assert took < 2.0, f"{took:.2f} s after Ctrl-C:\n{run.output}"
    assert run.process.returncode == 2, run.output  # pytest's "interrupted"
    report = _report(reports)
    assert report["overall"] == "incomplete", report["overall_reason"]
    assert "interrupted" in report["overall_reason"] and "Ctrl-C" in report["overall_reason"]
    tests = _tests(report)
    assert tests["test_first_passes"]["verdict"] == "pass"  # everything gathered so far is kept
    assert tests["test_second_waits"]["verdict"] == "incomplete"


def test_sigterm_ends_the_run_like_ctrl_c(run_with: Callable[[str], tuple[Run, Path]], tmp_path: Path) -> None:
    run, reports = run_with("sim")
    _wait_until_second_test_waits(run, "sim", tmp_path)
    took = run.signal_and_time(signal.SIGTERM)
    assert took < 2.0, run.output
    assert run.process.returncode == 2, run.output
    report = _report(reports)
    assert report["overall"] == "incomplete" and "SIGTERM" in report["overall_reason"]


def test_a_second_ctrl_c_exits_at_once_and_still_leaves_a_report(
    run_with: Callable[[str], tuple[Run, Path]], tmp_path: Path
) -> None:
    run, reports = run_with("manual")
    _wait_until_second_test_waits(run, "manual", tmp_path)
    took = run.signal_and_time(signal.SIGINT, again_after=0.05)
    assert took < 2.0, run.output
    assert run.process.returncode == 2, run.output
    report = _report(reports)
    assert report["overall"] == "incomplete" and "interrupted" in report["overall_reason"]
    assert _tests(report)["test_first_passes"]["verdict"] == "pass"


def test_ctrl_c_with_xdist_ends_the_run_within_2_s_with_an_interrupted_report(tmp_path: Path, certs_dir: Path) -> None:
    """pytest-xdist: a terminal's Ctrl-C reaches the controller and its workers (one process group)."""
    pytest.importorskip("xdist")
    marker = tmp_path / "waiting"
    (tmp_path / "test_interrupted.py").write_text(SUITE.replace(
        "ACT", f'open({str(marker)!r}, "w").close()\n    await charger.expect("DataTransfer", within=120)'))
    # a suites folder's conftest says "certification suites" (as suites/conftest.py does): the controller, which
    # collects nothing under xdist, writes the report even if no test finished
    (tmp_path / "conftest.py").write_text(
        "from harness.report.collector import CERTIFICATION_RUN\n\n\n"
        "def pytest_configure(config):\n    config.stash[CERTIFICATION_RUN] = True\n"
    )
    reports = tmp_path / "reports"
    run = Run(["--certs-dir", str(certs_dir), "--report-dir", str(reports), "-n", "2", "test_interrupted.py"],
              tmp_path, group=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert run.process.poll() is None and time.monotonic() < deadline, run.output
            threading.Event().wait(0.05)
        took = run.signal_and_time(signal.SIGINT)
    finally:
        run.close()
    assert took < 2.0, f"{took:.2f} s after Ctrl-C:\n{run.output}"
    assert run.process.returncode == 2, run.output
    report = _report(reports)
    assert report["overall"] == "incomplete" and "Ctrl-C" in report["overall_reason"], report["overall_reason"]
    # The test a worker was running when the signal came: its record crosses from the worker to the controller only
    # if the worker gets to send it before the controller shuts down (a race pytest-xdist decides; seen both ways on
    # a loaded machine). When it arrives it must say incomplete, never pass or fail; the run's verdict above holds
    # either way, and a single-process run (the other tests here) always keeps it.
    waiting = _tests(report).get("test_second_waits")
    assert waiting is None or waiting["verdict"] == "incomplete", waiting
