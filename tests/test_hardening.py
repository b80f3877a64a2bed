"""The endpoint under hostile conditions of the machine: out of file descriptors, signals.

Real subprocesses with real limits (RLIMIT_NOFILE lowered with `prlimit`-style preexec), real sockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from harness import tls
from tests.helpers import basic
from tests.test_cli import read_until

pytestmark = pytest.mark.asyncio(loop_scope="session")

ID = "CP-FD-1"
KEY = "00112233445566778899aabbccddeeff00112233"
FD_LIMIT = 64


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _lower_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to read the server's CPU time")
async def test_out_of_descriptors_backs_off_logs_once_recovers_and_stops_on_a_signal(certs_dir: Path) -> None:
    env = {**os.environ, "CHARGER_AUTHORIZATION_KEY": KEY}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harness", "serve", "--csms-port", "0", "--certs-dir", str(certs_dir),
        "--charger-id", ID, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_lower_fd_limit, env=env,
    )
    assert process.stdout is not None
    hogs: list[socket.socket] = []
    try:
        url = (await read_until(process.stdout, r"URL:")).split()[-1]
        port = int(url.split(":")[2].split("/")[0])
        # Silent TCP connections until the server runs out of descriptors (each waits for its handshake).
        for _ in range(FD_LIMIT + 16):
            hogs.append(socket.create_connection(("127.0.0.1", port)))
        line = await read_until(process.stdout, r"cannot accept connections", within=10)
        assert f"open-file limit {FD_LIMIT}" in line and "connection(s) open" in line
        # Backing off, not spinning: well under a tenth of a core while it waits.
        before, started = _cpu_seconds(process.pid), time.monotonic()
        await asyncio.sleep(1.5)  # a fixed span over which to measure the server's CPU time
        used = _cpu_seconds(process.pid) - before
        assert used < 0.15 * (time.monotonic() - started), f"{used:.2f} s of CPU in 1.5 s while out of descriptors"
        # Descriptors free up: it serves a charger again.
        for hog in hogs:
            hog.close()
        hogs.clear()
        ctx = tls.client_context(certs_dir / "ca.pem")
        async with asyncio.timeout(15):
            while True:
                try:
                    ws = await connect(url, ssl=ctx, subprotocols=["ocpp1.6"], additional_headers=basic(ID, KEY))
                    break
                except OSError:
                    await asyncio.sleep(0.1)  # the server finishes closing the silent sockets
        async with ws:
            await ws.send('[2,"1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]')
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))[2]["status"] == "Accepted"
        out = await read_until(process.stdout, r"accepting connections again|BootNotification", within=5)
        assert out
    finally:
        for hog in hogs:
            hog.close()
        process.send_signal(signal.SIGTERM)
        rest = (await asyncio.wait_for(process.stdout.read(), 5)).decode()
        assert await asyncio.wait_for(process.wait(), 5) == 0
    assert rest.count("cannot accept connections") == 0, "logged more than once"
    assert KEY not in rest


async def test_serve_takes_the_key_from_the_profile_or_the_environment_never_the_command_line(
    certs_dir: Path, tmp_path: Path
) -> None:
    profile = tmp_path / "charger.toml"
    profile.write_text(f'[charger]\nid = "{ID}"\nauthorization_key_env = "BENCH_KEY"\n\n[endpoint]\nport = 0\n')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harness", "serve", "--charger-profile", str(profile), "--certs-dir", str(certs_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ, "BENCH_KEY": KEY},
    )
    assert process.stdout is not None
    try:
        url = (await read_until(process.stdout, r"URL:")).split()[-1]
        assert url.endswith(f"/ocpp/{ID}")
        assert "BENCH_KEY" in await read_until(process.stdout, r"auth:")
        assert KEY not in Path(f"/proc/{process.pid}/cmdline").read_text()  # nothing for `ps` to show
        ctx = tls.client_context(certs_dir / "ca.pem")
        async with await connect(url, ssl=ctx, subprotocols=["ocpp1.6"], additional_headers=basic(ID, KEY)):
            await read_until(process.stdout, r"OK .*connected")
    finally:
        process.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(process.stdout.read(), 5)).decode()
        assert await asyncio.wait_for(process.wait(), 5) == 0
    assert KEY not in rest

    # The variable it names is not set: a one-line usage error naming it.
    missing = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harness", "serve", "--charger-profile", str(profile), "--certs-dir", str(certs_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k not in ("BENCH_KEY", "CHARGER_AUTHORIZATION_KEY")},
    )
    out, _ = await asyncio.wait_for(missing.communicate(), 20)
    assert missing.returncode == 2 and b"BENCH_KEY" in out and b"Traceback" not in out, out.decode()


@pytest.mark.parametrize("limit", ["1e27", "1E+999999", "123456789012345678901234567890.123456789"])
async def test_a_huge_number_in_an_answer_is_a_finding_not_a_crash(endpoint, limit: str) -> None:
    """Regression: 1e27 against `multipleOf: 0.1` raised decimal.InvalidOperation in the harness, the connection
    closed with 1011 and the report blamed the charger for disconnecting."""
    from ocpp.v16 import call

    from tests.helpers import CHARGER_ID, open_charger

    session = endpoint.session(CHARGER_ID)
    async with await open_charger(endpoint) as ws:
        await session.wait_connected(5)

        async def charger_side() -> None:
            request = json.loads(await ws.recv())
            schedule = f'{{"chargingRateUnit":"A","chargingSchedulePeriod":[{{"startPeriod":0,"limit":{limit}}}]}}'
            await ws.send(f'[3,"{request[1]}",{{"status":"Accepted","connectorId":1,"chargingSchedule":{schedule}}}]')

        task = asyncio.create_task(charger_side())
        result = await session.call(call.GetCompositeSchedule(connector_id=1, duration=60))
        await task
        assert result.status == "Accepted"
        assert session.connected
        # Still serving: the next request on the same connection is answered.
        await ws.send('[2,"hb-1","Heartbeat",{}]')
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer[0] == 3 and answer[1] == "hb-1"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


#: The stated bound: what 200 frames of 1 MiB may leave behind in the process that hosts the endpoint. Before the
#: fix each frame of numbers kept ~20 MB (its parsed Decimals in the inbox, its text in the trace).
MEMORY_BOUND_MB = 64


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
async def test_memory_stays_bounded_under_200_frames_of_1_mib(endpoint) -> None:
    from tests.helpers import CHARGER_ID, open_charger

    session = endpoint.session(CHARGER_ID)
    # Just under the endpoint's 1 MiB frame limit: a valid CALL whose payload is 160,000 numbers (the worst case:
    # each parses to a Decimal) with a field DataTransfer does not have (so each also makes a schema finding).
    numbers = ",".join(["1.25"] * 160_000)
    async with await open_charger(endpoint, max_size=None) as ws:
        await session.wait_connected(5)
        await ws.send('[2,"warm","DataTransfer",{"vendorId":"x","extra":[1.25]}]')
        await asyncio.wait_for(ws.recv(), 5)
        import gc

        gc.collect()
        before = _rss_mb()
        for i in range(200):
            frame = f'[2,"big-{i}","DataTransfer",{{"vendorId":"x","extra":[{numbers}]}}]'
            assert len(frame) < 1024 * 1024
            await ws.send(frame)
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert answer[1] == f"big-{i}"
        gc.collect()
        grown = _rss_mb() - before
    assert grown < MEMORY_BOUND_MB, f"resident memory grew {grown:.0f} MB over 200 frames of 1 MiB"
    kept = [e for e in session.trace.since(0) if e.text.startswith("[2,\"big-")]
    assert kept and all(len(e.text) < 9 * 1024 and "sha256 " in e.text for e in kept)
    assert all(len(v.message) <= 1100 for v in session.violations)


@pytest.mark.parametrize(
    ("action", "payload"),
    [
        ("RemoteStartTransaction", '{"idTag":"X"}'),
        ("SetChargingProfile", '{"connectorId":1,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,'
         '"chargingProfilePurpose":"TxProfile","chargingProfileKind":"Absolute","chargingSchedule":'
         '{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,"limit":6}]}}}'),
    ],
)
async def test_an_action_only_the_platform_sends_is_refused_and_noted(endpoint, action: str, payload: str) -> None:
    from tests.helpers import CHARGER_ID, open_charger

    session = endpoint.session(CHARGER_ID)
    start = session.trace.next_seq
    async with await open_charger(endpoint) as ws:
        await session.wait_connected(5)
        await ws.send(f'[2,"x-1","{action}",{payload}]')
        answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert answer[:3] == [4, "x-1", "NotSupported"]
        assert isinstance(answer[4], dict)
        # Not a pass for the charger's sake, not a failure of a requirement: an advisory finding.
        (finding,) = [v for v in session.violations_since(start) if action in v.message]
        assert finding.requirement == "ADV-1" and finding.kind == "advisory"
        assert not session.received(action)
        await ws.send('[2,"hb","Heartbeat",{}]')
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))[:2] == [3, "hb"]


async def test_control_characters_a_charger_sends_never_reach_a_terminal() -> None:
    from harness.endpoint import ConnectionAttempt
    from harness.printable import printable
    from harness.session import Violation
    from harness.trace import RX, Redactor, Trace

    hostile = "CP\x1b[2J\x1b]8;;http://evil\x07link\x1b]8;;\x07\x9b31m\u202eevil"
    assert not any(ch in printable(hostile) for ch in "\x1b\x07\x9b\u202e")
    assert printable("a\nb\tc") == "a\nb\tc" and printable("a\nb", one_line=True) == "a\\x0ab"
    line = Trace(Redactor()).record(RX, f'[2,"1","BootNotification",{{"chargePointVendor":"{hostile}"}}]').line()
    attempt = ConnectionAttempt(time="t", peer="127.0.0.1:1", charger_id=hostile, detail=hostile)
    import datetime as dt

    violation = Violation(1, dt.datetime.now(dt.timezone.utc), "k", hostile, hostile)
    for shown in (line, attempt.summary(), str(violation)):
        assert "\x1b" not in shown and "\x9b" not in shown and "\x07" not in shown and "\u202e" not in shown, shown
        assert "\\x1b[2J" in shown


async def test_a_failure_quoting_the_charger_reaches_the_terminal_without_its_control_sequences(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_quotes='''
import pytest

@pytest.mark.requirement("CORE-1")
def test_vendor_field():
    vendor = "ACME\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m"  # what a hostile charger might put in chargePointVendor
    assert vendor == "ACME", f"unexpected chargePointVendor {vendor}"

@pytest.mark.requirement("CORE-1")
def test_skip_reason():
    pytest.skip("not tested: the rig said \\x1b[31mno\\x1b[0m")
''')
    result = pytester.runpytest_subprocess("-rs", "--report-dir", str(tmp_path / "report"), "-p", "no:cacheprovider")
    out = result.stdout.str() + result.stderr.str()
    assert "unexpected chargePointVendor" in out and "the rig said" in out
    assert "\x1b[2J" not in out and "\x9b" not in out and "\x07" not in out and "\x1b[31mno" not in out
    assert "\\x1b[2J" in out
