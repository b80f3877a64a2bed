"""pytest-xdist: `pytest suites/ -n 2` certifies two reference chargers at once and writes one report.

One subprocess run of the real suites, as a user would start it. Each worker starts its own
endpoint on a free port (port 0) and its own reference charger, whose id is the configured id plus
the worker id; the controller alone collects every test's verdict and evidence and writes the one
report, in which both workers' chargers are visible (charger.workers, the connection attempts, and
each test's `worker`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

import jsonschema

from harness.report import schema, verify

pytest.importorskip("xdist")

ROOT = Path(__file__).resolve().parent.parent
CHARGER_ID = "XDIST-CP"
WORKERS = ("gw0", "gw1")


def _pytest(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTEST_XDIST"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def xdist_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path, list[str]]:
    base = tmp_path_factory.mktemp("xdist")
    collected = _pytest("suites/", "--collect-only", "-q", timeout=120)
    assert collected.returncode == 0, collected.stdout[-3000:]
    nodeids = [line.strip() for line in collected.stdout.splitlines() if "::" in line and not line.startswith(" ")]
    assert nodeids, collected.stdout[-3000:]
    result = _pytest(
        "suites/", "-n", "2", "-q", "--charger-id", CHARGER_ID,
        "--report-dir", str(base / "report"), "--certs-dir", str(base / "certs"),
        timeout=600,
    )
    return result, base / "report", nodeids


def test_two_workers_one_report(xdist_run: tuple[subprocess.CompletedProcess[str], Path, list[str]]) -> None:
    result, report_dir, nodeids = xdist_run
    assert result.returncode == 0, f"pytest suites/ -n 2 failed:\n{result.stdout[-6000:]}"
    # One report, written once by the controller (no per-worker files).
    assert sorted(p.name for p in report_dir.iterdir()) == ["certification.html", "certification.json", "history", "summary.md"]
    assert len(list((report_dir / "history").iterdir())) == 1  # this run, kept for later runs
    report = json.loads((report_dir / "certification.json").read_text(encoding="utf-8"))
    assert verify(report_dir / "certification.json") and verify(report_dir / "certification.html")
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(report)
    assert report["run"]["workers"] == 2
    assert report["run"]["interrupted"] is False and report["run"]["incomplete_reason"] is None

    # Every collected test is in the report exactly once, with a verdict, and both workers ran tests.
    tests: dict[str, dict] = {}
    for requirement in report["requirements"]:
        for test in requirement["tests"]:
            tests[test["nodeid"]] = test
    for test in report["advisory"]:
        tests[test["nodeid"]] = test
    assert sorted(tests) == sorted(nodeids), (
        f"missing: {sorted(set(nodeids) - set(tests))}; unexpected: {sorted(set(tests) - set(nodeids))}"
    )
    bad = {n: t["verdict"] for n, t in tests.items() if t["verdict"] not in ("pass", "not applicable", "not tested")}
    assert not bad, f"tests that did not pass against the reference charger under -n 2: {bad}"
    assert {t.get("worker") for t in tests.values()} == set(WORKERS)

    # Every requirement on ev.energy's list has its verdict, none failed or incomplete.
    assert len(report["requirements"]) == 22
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"]}
    assert all(v in ("pass", "not applicable", "not tested") for v in verdicts.values()), verdicts
    for requirement in report["requirements"]:
        if requirement["tests"] and requirement["kind"] == "mandatory" and not requirement.get("or_group"):
            assert requirement["verdict"] == "pass", requirement
    assert report["summary"]["tests"]["fail"] == 0 and report["summary"]["tests"]["incomplete"] == 0


def test_each_worker_has_its_own_charger_id_and_port(
    xdist_run: tuple[subprocess.CompletedProcess[str], Path, list[str]],
) -> None:
    result, report_dir, _ = xdist_run
    assert result.returncode == 0, result.stdout[-6000:]
    report = json.loads((report_dir / "certification.json").read_text(encoding="utf-8"))
    charger = report["charger"]
    assert charger["id"] == CHARGER_ID  # the configured id; each worker's charger appends its worker id
    workers = {w["worker"]: w for w in charger["workers"]}
    assert sorted(workers) == list(WORKERS), charger
    ids = {w: workers[w]["id"] for w in WORKERS}
    assert ids == {w: f"{CHARGER_ID}-{w}" for w in WORKERS}
    ports = set()
    for worker in WORKERS:
        entry = workers[worker]
        assert entry["firmware"] and entry["serial"], entry  # each booted (BootNotification seen)
        url = urllib.parse.urlsplit(entry["endpoint"])
        assert url.scheme == "wss" and url.path == f"/ocpp/{ids[worker]}", entry
        ports.add(url.port)
    assert len(ports) == 2, f"the workers' endpoints share a port: {[w['endpoint'] for w in charger['workers']]}"
    # Both chargers connected (the endpoint of each worker recorded its own charger's attempts).
    connected = {a.get("charger_id") for a in report["connection_attempts"] if a.get("outcome") == "connected"}
    assert set(ids.values()) <= connected, connected
    # Each test's evidence comes from its own worker's charger.
    for requirement in report["requirements"]:
        for test in requirement["tests"]:
            for frame in test.get("frames") or []:
                text = frame.get("text") or ""
                if frame.get("direction") == "event" and text.startswith("connection attempt") and "'" in text:
                    other = ids[WORKERS[1 - WORKERS.index(test["worker"])]]
                    assert f"'{other}'" not in text, (test["nodeid"], text)
    html = (report_dir / "certification.html").read_text(encoding="utf-8")
    assert all(i in html for i in ids.values())
