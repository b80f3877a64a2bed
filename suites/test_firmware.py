"""FW-1: Firmware Management, when ev.energy manages the charger's firmware.

UpdateFirmware (OCPP 1.6 §5.19) with FirmwareStatusNotification (§4.5), and GetDiagnostics (§5.9)
with DiagnosticsStatusNotification (§4.4). OCTT TC_044_1_CS (download and install), TC_044_2_CS
(download failed), TC_045_1_CS (get diagnostics).

The harness serves both ends itself (harness.fileserver): the firmware file over HTTPS (the harness
CA's certificate, as the endpoint's) or FTP, and it receives the diagnostics upload. So "the file was
fetched" and "the file was uploaded" are facts from the server's log, not the charger's word.

FW-1 applies only when the manufacturer declares that ev.energy manages the firmware
(`firmware_managed`); otherwise every test here is "not applicable".
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from ocpp.v16 import call

from harness import ocppj
from harness.endpoint import Endpoint
from harness.errors import ChargerFailure
from harness.fileserver import FileServer
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

try:
    from harness.report.collector import RUN_INFO
except ImportError:  # pragma: no cover - the report package is optional for the suites
    RUN_INFO = None  # type: ignore[assignment]

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIRMWARE_STEPS = ("Downloading", "Downloaded", "Installing", "Installed")
FIRMWARE_FAILURES = ("DownloadFailed", "InstallationFailed")


def firmware_managed(settings: Settings) -> bool | None:
    """The manufacturer's declaration: does ev.energy manage this charger's firmware (FW-1 applies)?

    The charger profile's `firmware_managed_by_ev_energy` when given; the reference charger (--charger=sim)
    declares True (it implements Firmware Management fully); otherwise None (no declaration).
    """
    declared = getattr(settings, "firmware_managed", None)
    if isinstance(declared, bool):
        return declared
    if settings.charger == "sim":
        return True
    return None


def transfer_schemes(settings: Settings, purpose: str) -> tuple[str, ...]:
    """The URL schemes to test for `purpose` ("firmware" or "diagnostics").

    HTTPS always for firmware (the platform's own choice); FTP when the charger says it uses FTP
    (charger profile `diagnostics_upload = "ftp"`). The reference charger does both, so both are tested.
    """
    declared = getattr(settings, "diagnostics_upload", None)
    if settings.charger == "sim" and declared is None:
        return ("https", "ftp")
    if purpose == "diagnostics":
        return ("ftp",) if declared == "ftp" else ("https",)
    return ("https", "ftp") if declared == "ftp" else ("https",)


def firmware_image(settings: Settings) -> tuple[str, bytes] | None:
    """The firmware file to install: (file name, content), or None when none was given for this charger.

    The reference charger installs any file (a random 64 KiB image, its name carrying a new version).
    A real charger needs a real image of its own (charger profile `firmware_image`, a path).
    """
    given = getattr(settings, "firmware_image", None)
    if given:
        path = Path(given)
        return path.name, path.read_bytes()
    if settings.charger == "sim":
        version = f"9.{secrets.randbelow(1000)}.{secrets.randbelow(1000)}"
        return f"evenergy-fw-{version}.bin", secrets.token_bytes(64 * 1024)
    return None


def _bounds(settings: Settings) -> tuple[float, float]:
    """(first notification, whole operation): how long the charger may take, in seconds."""
    return (10.0, 30.0) if settings.quick else (120.0, 900.0)


def _skip_unless_applicable(settings: Settings, config: pytest.Config) -> None:
    managed = firmware_managed(settings)
    if managed is None:
        pytest.skip("not applicable: no declaration whether ev.energy manages the charger's firmware "
                    "(firmware_managed_by_ev_energy); treated as managed by the manufacturer")
    if managed is False:
        pytest.skip("not applicable: the manufacturer declares it manages the charger's firmware itself")
    # The report reads the declaration from the run info: the reference charger's implicit one must reach it.
    if RUN_INFO is not None:
        info = config.stash.get(RUN_INFO, None)
        if isinstance(info, dict):
            declarations = info.setdefault("declarations", {})
            if isinstance(declarations, dict) and declarations.get("firmware_managed_by_ev_energy") is None:
                declarations["firmware_managed_by_ev_energy"] = True


def _skip_unless_scheme(settings: Settings, purpose: str, scheme: str) -> None:
    if scheme not in transfer_schemes(settings, purpose):
        pytest.skip(f"not applicable: this charger's {purpose} transfers are not declared to use {scheme.upper()}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fileserver(csms: Endpoint, harness_settings: Settings) -> AsyncIterator[FileServer]:
    """The harness's own HTTPS + FTP file server, on the endpoint's host (the charger reaches both alike)."""
    url_host = urllib.parse.urlsplit(csms.url).hostname or csms.local_host
    server = FileServer(csms.certs, csms.config.host, url_host=url_host,
                        timeout=harness_settings.scaled(30))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _statuses(charger: ChargerSession, action: str, since: int) -> list[ReceivedCall]:
    return charger.received(action, since=since)


def _sequence(calls: list[ReceivedCall]) -> str:
    return " → ".join(str(c.get("status")) for c in calls) or "none"


FAILURE_STATUSES = {"FirmwareStatusNotification": FIRMWARE_FAILURES, "DiagnosticsStatusNotification": ("UploadFailed",)}


async def _expect_status(
    charger: ChargerSession, action: str, status: str, *, since: int, within: float, after: str
) -> ReceivedCall:
    """The first `action` with `status` since `since`; fails at once, with the sequence so far, on a failure status."""
    failures = tuple(f for f in FAILURE_STATUSES.get(action, ()) if f != status)
    got = await charger.expect(
        action,
        where=lambda c: c.get("status") in (status, *failures),
        since=since,
        within=within,
        describe=f"{action} {status} ({after})",
    )
    if got.get("status") != status:
        raise ChargerFailure(
            f"expected {action} {status} ({after}); the charger reported {got.get('status')}: "
            f"{_sequence(charger.received(action, since=since))}"
        )
    return got


@pytest.mark.requirement("FW-1")
@pytest.mark.parametrize("scheme", ["https", "ftp"])
async def test_update_firmware(
    charger: ChargerSession, fileserver: FileServer, harness_settings: Settings, request: pytest.FixtureRequest,
    scheme: str,
) -> None:
    """FW-1: UpdateFirmware with the harness's URL: the charger fetches the file (the server's log shows a
    complete download), reports Downloading, Downloaded, Installing, Installed in that order, reboots and
    sends a BootNotification (OCPP 1.6 §5.19, §4.5; OCTT TC_044_1_CS)."""
    settings = harness_settings
    _skip_unless_applicable(settings, request.config)
    _skip_unless_scheme(settings, "firmware", scheme)
    image = firmware_image(settings)
    if image is None:
        pytest.skip("not tested: no firmware image for this charger was given (charger profile firmware_image)")
    name, content = image
    path = fileserver.add_file(f"/firmware/{secrets.token_hex(4)}/{name}", content)
    location = fileserver.url(path, scheme)
    first_bound, whole_bound = _bounds(settings)
    old_boot = charger.boot.payload if charger.boot is not None else {}

    since, mark = charger.trace.next_seq, time.monotonic()
    # The request from its dataclass, the answer raw: the test checks that UpdateFirmware.conf is empty, which its
    # dataclass (no fields) cannot show.
    update = call.UpdateFirmware(location=location, retrieve_date=_now_rfc3339(), retries=1, retry_interval=5)
    answer = await charger.call_raw("UpdateFirmware", ocppj.payload_of(update))
    assert answer == {}, f"expected an empty UpdateFirmware.conf (it has no fields); got {answer}"

    action = "FirmwareStatusNotification"
    downloading = await _expect_status(charger, action, "Downloading", since=since, within=first_bound,
                                       after="the download starts")
    downloaded = await _expect_status(charger, action, "Downloaded", since=downloading.seq, within=whole_bound,
                                      after="after Downloading")
    fetched = [r for r in fileserver.fetches(path, since=mark) if r.mono <= downloaded.mono]
    assert fetched, (
        f"the charger reported Downloaded, but the harness's file server had not served the whole file "
        f"({len(content)} bytes at {location}) before that.\n{fileserver.describe(since=mark)}"
    )
    installing = await _expect_status(charger, action, "Installing", since=downloaded.seq, within=whole_bound,
                                      after="after Downloaded")
    installed = await _expect_status(charger, action, "Installed", since=installing.seq, within=whole_bound,
                                     after="after Installing")
    # The reboot that activates the new firmware: OCTT TC_044_1 has it between Installing and Installed,
    # many chargers reboot right after Installed. Both are accepted; a BootNotification must come.
    boot = await charger.expect("BootNotification", since=installing.seq, within=whole_bound,
                                describe="a BootNotification after the installation (the reboot into the new firmware)")
    seen = _statuses(charger, action, since)
    failures = [c for c in seen if c.get("status") in FIRMWARE_FAILURES]
    assert not failures, f"expected no failure status; the charger sent {_sequence(seen)}"
    order = [c.get("status") for c in seen if c.get("status") in FIRMWARE_STEPS]
    firsts = [order.index(s) for s in FIRMWARE_STEPS]
    assert firsts == sorted(firsts), f"expected {' → '.join(FIRMWARE_STEPS)} in order; got {_sequence(seen)}"

    old_version, new_version = old_boot.get("firmwareVersion"), boot.get("firmwareVersion")
    fetch = fetched[0]
    charger.note(
        f"{scheme.upper()} download of {len(content)} B ({fetch.summary()}); {_sequence(seen)}; "
        f"rebooted {'before' if boot.seq < installed.seq else 'after'} Installed; firmwareVersion "
        f"{old_version!r} → {new_version!r}"
    )
    charger.details["firmware"] = {"scheme": scheme, "from": old_version, "to": new_version}
    await charger.wait_connected(within=whole_bound)


@pytest.mark.requirement("FW-1")
async def test_update_firmware_broken_url(
    charger: ChargerSession, fileserver: FileServer, harness_settings: Settings, request: pytest.FixtureRequest
) -> None:
    """FW-1: UpdateFirmware with a URL that does not exist (HTTP 404 from the harness's server): the charger
    tries it and reports DownloadFailed, and installs nothing (OCPP 1.6 §5.19, §4.5; OCTT TC_044_2_CS)."""
    settings = harness_settings
    _skip_unless_applicable(settings, request.config)
    path = f"/firmware/{secrets.token_hex(4)}/missing-firmware.bin"
    location = fileserver.url(path, "https")
    first_bound, whole_bound = _bounds(settings)
    since, mark = charger.trace.next_seq, time.monotonic()
    # The request from its dataclass, the answer raw: the test checks that UpdateFirmware.conf is empty, which its
    # dataclass (no fields) cannot show.
    update = call.UpdateFirmware(location=location, retrieve_date=_now_rfc3339(), retries=1, retry_interval=5)
    answer = await charger.call_raw("UpdateFirmware", ocppj.payload_of(update))
    assert answer == {}, f"expected an empty UpdateFirmware.conf (it has no fields); got {answer}"
    action = "FirmwareStatusNotification"
    await charger.expect(action, since=since, within=first_bound,
                         describe="a FirmwareStatusNotification (Downloading or DownloadFailed) for the broken URL")
    failed = await _expect_status(charger, action, "DownloadFailed", since=since, within=whole_bound,
                                  after="the file does not exist")
    seen = _statuses(charger, action, since)
    wrong = [c for c in seen if c.seq < failed.seq and c.get("status") not in ("Downloading", "DownloadFailed")]
    assert not wrong, f"expected (Downloading →) DownloadFailed; got {_sequence(seen)}"
    tried = [r for r in fileserver.requests_since(mark) if r.path == path]
    assert tried, (
        "the charger reported DownloadFailed without requesting the file from the harness's server "
        f"({location}).\n{fileserver.describe(since=mark)}"
    )
    # "Installs nothing": watched from here on (until the harness's next UpdateFirmware) rather than waited for.
    charger.forbid(action, where=lambda c: c.get("status") in ("Installing", "Installed"), since=failed.seq,
                   window=0.5, lasts=whole_bound, until_sent=("UpdateFirmware",), requirement="FW-1",
                   origin=request.node.name,
                   what=f"expected no installation after DownloadFailed for the missing file {location}; "
                        "the charger reported Installing/Installed")
    charger.note(f"{_sequence(seen)}; the server answered {tried[0].status} to {tried[0].method} {path}")


@pytest.mark.requirement("FW-1")
@pytest.mark.parametrize("scheme", ["https", "ftp"])
async def test_get_diagnostics(
    charger: ChargerSession, fileserver: FileServer, harness_settings: Settings, request: pytest.FixtureRequest,
    scheme: str,
) -> None:
    """FW-1: GetDiagnostics to the harness's URL: the answer names the file, the charger reports Uploading
    then Uploaded, and the harness has received the file by then (OCPP 1.6 §5.9, §4.4; OCTT TC_045_1_CS)."""
    settings = harness_settings
    _skip_unless_applicable(settings, request.config)
    _skip_unless_scheme(settings, "diagnostics", scheme)
    folder = f"/diagnostics/{secrets.token_hex(4)}/"
    location = fileserver.url(folder, scheme) + "/"
    first_bound, whole_bound = _bounds(settings)
    since, mark = charger.trace.next_seq, time.monotonic()
    answer = await charger.call(call.GetDiagnostics(location=location, retries=1, retry_interval=5))
    file_name = answer.file_name
    assert file_name, (
        "expected GetDiagnostics.conf to name the diagnostics file (fileName); it has none, which means the charger "
        "has no diagnostics to upload (§5.9): the platform cannot get diagnostics from it"
    )
    action = "DiagnosticsStatusNotification"
    uploading = await _expect_status(charger, action, "Uploading", since=since, within=first_bound,
                                     after="the upload starts")
    uploaded = await _expect_status(charger, action, "Uploaded", since=uploading.seq, within=whole_bound,
                                    after="after Uploading")
    seen = _statuses(charger, action, since)
    assert not [c for c in seen if c.get("status") == "UploadFailed"], f"expected no UploadFailed; got {_sequence(seen)}"

    def in_folder(upload: Any) -> bool:
        return upload.path.rstrip("/").startswith(folder.rstrip("/"))

    received = [u for u in fileserver.uploads_since(mark) if in_folder(u) and u.mono <= uploaded.mono]
    if not received:
        raise ChargerFailure(
            f"the charger reported Uploaded, but the harness received no file at {location} "
            f"(fileName {file_name!r}) before that.\n{fileserver.describe(since=mark)}"
        )
    upload = received[-1]
    assert upload.content, f"the uploaded diagnostics file {upload.filename!r} is empty"
    if upload.filename != file_name:
        charger.note(f"uploaded as {upload.filename!r}, while GetDiagnostics.conf announced {file_name!r}")
    charger.note(f"{_sequence(seen)}; received {upload.summary()}")
    charger.details["diagnostics"] = {"scheme": scheme, "file": upload.filename, "bytes": len(upload.content)}
