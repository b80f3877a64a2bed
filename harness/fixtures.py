"""The harness's fixtures, found by pytest in this module (harness/plugin.py registers it as a plugin):

- `harness_settings`: the run's Settings (harness/settings.py) (session);
- `csms`: the fake ev.energy endpoint (session);
- `charger_backend`: the rig (the built-in reference charger by default) (session);
- `charger`: a connected, booted, idle charger at the start of each test, put back after it
  (harness/isolation.py).
One event loop serves the whole session: the endpoint lives across tests, and each async test runs on that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
import pytest_asyncio
from ocpp.v16 import call
from ocpp.v16.enums import MessageTrigger

from harness import interrupt, settings as settings_mod
from harness import session as session_mod
from harness.drivers.base import ChargerBackend, EndpointInfo
from harness.endpoint import CONNECTED, NOT_HTTP, PLAIN_WS, SILENT, TLS_FAILED, UNAUTHORIZED, ConnectionAttempt, Endpoint, EndpointConfig
from harness.errors import ChargerSilent, ExpectationTimeout
from harness.guard import account
from harness.isolation import ensure_idle, configuration_baseline, put_back
from harness.platform import PlatformSettings
from harness.progress import StatusLine
from harness.report.collector import RUN_INFO
from harness.requirements import requirement_ids
from harness.rig import Rig
from harness.run_state import CURRENT_ITEM, PREPARE_BAD_CERTIFICATES, SILENT_AT_SETUP, STATE, STATUS_LINE, TEST_START, tell
from harness.session import ChargerSession, SessionSettings
from harness.settings import SETTINGS, Settings


@pytest.fixture(scope="session")
def harness_settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def csms(harness_settings: Settings, pytestconfig: pytest.Config) -> AsyncIterator[Endpoint]:
    """The fake ev.energy endpoint, for the whole session."""
    settings = harness_settings
    info = pytestconfig.stash[RUN_INFO]

    def on_attempt(attempt: ConnectionAttempt) -> None:
        attempts = info.setdefault("connection_attempts", [])
        if len(attempts) < 500:
            # Plain values only (BasicAuth is a StrEnum): pytest-xdist's execnet cannot send a str subclass to the
            # controller, and a worker that tries crashes the run.
            attempts.append({k: (v.value if isinstance(v, enum.Enum) else v) for k, v in attempt.as_dict().items()})
        if attempt.outcome != CONNECTED:
            item = pytestconfig.stash.get(CURRENT_ITEM, None)
            text, expected = refusal_text(
                attempt,
                requirement_ids(item) if item is not None else [],
                bad_certificate=getattr(endpoint, "_override_context", None) is not None,  # Endpoint.present()
                key_switched=_key_switched(endpoint, settings, attempt),
            )
            tell(pytestconfig, text, **({} if expected else {"red": True, "bold": True}))

    endpoint = Endpoint(
        EndpointConfig(
            host=settings.csms_host,
            port=settings.csms_port,
            certs_dir=settings.certs_dir,
            security_profile=settings.security_profile,
            timing=settings.timing,  # the sessions' too (EndpointConfig)
            platform=PlatformSettings(heartbeat_interval=settings.heartbeat_interval, id_tags=settings.id_tags),
            session=SessionSettings(silence_after=settings.timing.silence_after),
        ),
        on_attempt=on_attempt,
    )
    await endpoint.start()
    endpoint.register(settings.charger_id, settings.authorization_key)
    info["endpoint"] = endpoint.charger_url(settings.charger_id)
    if pytestconfig.stash.get(PREPARE_BAD_CERTIFICATES, False):
        endpoint.certs.prepare_bad_contexts()  # made in the background while the run waits on the charger
    status = _status_line(pytestconfig)
    try:
        with interrupt.waking(asyncio.get_running_loop()):  # Ctrl-C reaches a run asleep in select() at once
            yield endpoint
    finally:
        if status is not None:
            session_mod.WAIT_OBSERVERS.remove(status)
            status.close()
            pytestconfig.stash[STATUS_LINE] = None
        await _bounded_if_interrupted(endpoint.stop(), 0.5)


def _status_line(config: pytest.Config) -> StatusLine | None:
    """The live status line of long waits (harness/progress.py), for this run; None on an xdist worker (its
    output does not reach the user)."""
    if hasattr(config, "workerinput"):
        return None

    def current() -> tuple[tuple[str, ...], str]:
        item = config.stash.get(CURRENT_ITEM, None)
        return (tuple(requirement_ids(item)), item.name) if item is not None else ((), "")

    status = StatusLine(config, current)
    session_mod.WAIT_OBSERVERS.append(status)
    config.stash[STATUS_LINE] = status
    return status


#: Charge point ids the suites' own probes use (a plain ws:// probe cannot carry the probe's User-Agent reliably).
_PROBE_IDS = frozenset({"harness-plain-ws-probe"})


def _key_switched(endpoint: Endpoint, settings: Settings, attempt: ConnectionAttempt) -> bool:
    """Whether the platform holds, on purpose, another key for this charger than the run's (AUTH-1's refusal test,
    ADV-2's rotation): the suites switch it with Endpoint.register and put the run's back."""
    session = endpoint.sessions.get(attempt.charger_id or "")
    return session is not None and settings.authorization_key is not None and (
        session.authorization_key != settings.authorization_key
    )


def refusal_text(
    attempt: ConnectionAttempt, requirements: list[str], *, bad_certificate: bool, key_switched: bool = False
) -> tuple[str, bool]:
    """The operator's line for a refused connection attempt, and whether the refusal was one the harness provoked on
    purpose (its own probes; the charger refusing a bad certificate the harness presented; a 401 while the platform
    holds another key on purpose): those are expected outcomes, shown as such; any other refusal (the charger's own
    attempt refused) stays prominent."""
    about = "/".join(requirements)
    if attempt.is_probe or attempt.charger_id in _PROBE_IDS:
        what = {
            PLAIN_WS: "plain ws:// refused",
            UNAUTHORIZED: "a wrong password refused with HTTP 401",
        }.get(attempt.outcome, f"refused ({attempt.outcome})")
        return f"expected refusal ({about + ' ' if about else ''}probe by the harness): {what} ✓", True
    if bad_certificate and attempt.outcome in (TLS_FAILED, SILENT, NOT_HTTP):
        # It did not go past TLS: it refused the certificate (an upgrade over it would be accepting it: TLS-3 judges).
        # The details (what the charger offered, how it hung up) are in the report's connection attempts.
        return (
            f"expected refusal ({about + ': ' if about else ''}a bad server certificate presented on purpose): "
            f"the charger's attempt ended {attempt.outcome} ✓",
            True,
        )
    if key_switched and attempt.outcome == UNAUTHORIZED:
        return (
            f"expected refusal ({about + ': ' if about else ''}the platform holds another key on purpose): "
            "the charger's attempt refused with HTTP 401 ✓",
            True,
        )
    return f"connection attempt refused: {attempt.summary()}", False


def make_backend(settings: Settings, config: pytest.Config | None = None) -> ChargerBackend:
    if settings.charger == "sim":
        from harness.drivers.sim import SimBackend

        hardware = {"phases": settings.phases, "voltage": settings.nominal_voltage, "max_current": settings.max_current}
        return SimBackend(
            defects=settings.sim_defects,
            connectors=settings.sim_connectors,
            **{k: v for k, v in hardware.items() if v is not None},  # type: ignore[arg-type]  # hardware numbers
        )
    if settings.charger == "http":
        from harness.drivers.http import HttpBackend

        assert settings.charger_control_url is not None
        return HttpBackend(settings.charger_control_url)
    if settings.charger == "command":
        from harness.drivers.command import CommandBackend

        return CommandBackend(
            settings.rig_commands,
            timeout=settings.timing.command,
            cwd=settings.command_cwd,
            charger_id=settings.charger_id,
        )
    if settings.charger == "manual":
        from harness.drivers.manual import ManualBackend, PytestConsole, StreamConsole

        return ManualBackend(
            PytestConsole(config) if config is not None else StreamConsole(),
            timeout=settings.timing.prompt,
            charger_id=settings.charger_id,
        )
    raise pytest.UsageError(f"--charger={settings.charger!r}: use one of {', '.join(settings_mod.BACKENDS)}")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def charger_backend(
    csms: Endpoint, harness_settings: Settings, pytestconfig: pytest.Config
) -> AsyncIterator[ChargerBackend]:
    """The rig: for `sim`, the built-in reference charger started on this loop."""
    settings = harness_settings
    client_cert = None
    if settings.security_profile == 3 and settings.charger == "sim":
        cert, key = csms.certs.issue_client_cert(settings.charger_id)
        client_cert = (str(cert), str(key))
    backend = make_backend(settings, pytestconfig)
    session = csms.session(settings.charger_id)
    backend.attach(session)
    await backend.start(
        EndpointInfo(
            url=csms.url,
            charger_id=settings.charger_id,
            authorization_key=settings.authorization_key,
            ca_file=str(csms.certs.ca_pem),
            security_profile=settings.security_profile,
            client_cert=client_cert,
        )
    )
    if settings.charger != "sim" and not session.connected:
        tell(
            pytestconfig,
            settings.waiting_text(csms.charger_url(settings.charger_id), csms.certs.ca_pem, csms.certs.server_names()),
        )

    async def boot_if_reconnected() -> None:
        # A charger that was already running (brought up with `serve`, say) reconnects without a
        # BootNotification, as OCPP 1.6 allows; the suites start from its boot: power-cycle it.
        from harness.drivers.base import ActNotSupported, RigError

        try:
            await session.wait_until(lambda: session.connected, settings.timing.connect_timeout, "the charger to connect")
        except ExpectationTimeout:
            return  # the `charger` fixture reports it
        with contextlib.suppress(ExpectationTimeout):
            await session.wait_until(lambda: session.boot is not None, 10, "a BootNotification")
            return
        tell(
            pytestconfig,
            f"charger {settings.charger_id!r} connected without a BootNotification (it was already running): "
            "power-cycling it through the rig, so that the run starts from its boot",
        )
        session.trace.event("rig: power-cycle the charger (it reconnected without a BootNotification)")
        try:
            await backend.reboot()
        except (ActNotSupported, RigError) as exc:
            tell(pytestconfig, f"the rig could not power-cycle it ({exc}); asking for a BootNotification with TriggerMessage")
            with contextlib.suppress(Exception):
                await session.call(call.TriggerMessage(requested_message=MessageTrigger.boot_notification))

    kick = asyncio.get_running_loop().create_task(boot_if_reconnected()) if settings.charger != "sim" else None
    try:
        yield backend
    finally:
        if kick is not None:
            kick.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception, KeyboardInterrupt):  # see _bounded_if_interrupted
                await kick
        await _bounded_if_interrupted(backend.stop(), 1.0)


@pytest_asyncio.fixture(loop_scope="session")
async def charger(
    csms: Endpoint, charger_backend: ChargerBackend, harness_settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[ChargerSession]:
    """A connected, booted, idle charger; what the test changed is put back afterwards."""
    settings = harness_settings
    state = request.config.stash[STATE]
    session = csms.session(settings.charger_id)
    state.session = session  # its trace is the run's: frames outside every test go to run-level sections
    if state.never_connected:
        raise ChargerNeverConnected(state.never_connected)
    rig = Rig(charger_backend, session)
    session.rig = rig
    try:
        # A silent charger (docs/rules-silence.md) is not waited for: the test fails at once with the one cause.
        session.fail_if_silent("the test's set-up did not wait for it")
        try:
            await session.wait_until(
                lambda: session.connected and session.boot is not None,
                settings.timing.connect_timeout,  # the session scales it
                f"charger {settings.charger_id!r} to connect and boot",
            )
        except ExpectationTimeout:
            state.never_connected = _never_connected(csms, session, settings)
            raise ChargerNeverConnected(state.never_connected) from None
        await ensure_idle(session, rig, state)
        if state.baseline_config is None:
            baseline = await configuration_baseline(session)
            session.fail_if_silent("the test's set-up did not wait for it")  # no baseline from a silent charger
            state.baseline_config, state.readonly_keys = baseline
    except ChargerSilent as exc:
        request.node.stash[SILENT_AT_SETUP] = session.silence() or str(exc)
    session.reset_answers()
    session.sent_calls.clear()
    session.details = {}
    request.node.stash[TEST_START] = session.mark()
    account(request.node, session, request.node.stash[TEST_START])  # set-up frames: a run-level section
    if not session.first_mark:
        session.first_mark = request.node.stash[TEST_START]
    try:
        yield session
    finally:
        session.reset_answers()
        # Interrupted (Ctrl-C, SIGTERM): putting the charger back would wait on the charger, the rig or the
        # operator; the run ends now.
        if not interrupt.requested():
            await put_back(session, rig, state)


async def _bounded_if_interrupted(step: Awaitable[object], bound: float) -> None:
    """Await a tear-down step; after Ctrl-C/SIGTERM give it at most `bound` seconds (the run ends in 2 s)."""
    if not interrupt.requested():
        await step
        return
    # A task of its own, waited for with asyncio.wait: a timeout that cancels the step would not bound a step that
    # suppresses CancelledError while it awaits its own tasks (the reference charger's and the endpoint's stops do).
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=bound)
    if not done:
        task.cancel()  # not awaited: the run ends now
        return
    # Anything, KeyboardInterrupt included, is dropped: a task the signal hit mid-step keeps that KeyboardInterrupt
    # and gives it again to whoever awaits it. Raised here, it would escape pytest's handling of the first one and
    # the report would not be written.
    if not task.cancelled():
        task.exception()


class ChargerNeverConnected(RuntimeError):
    """Setup failure: the run cannot certify anything (the report says `incomplete`)."""


def _never_connected(csms: Endpoint, session: ChargerSession, settings: Settings) -> str:
    attempts = csms.attempts_for(settings.charger_id) or list(csms.attempts)
    lines = [
        f"charger never connected: no connected and booted charger {settings.charger_id!r} within "
        f"{settings.timing.connect:g} s.",
        f"  expected URL: {csms.charger_url(settings.charger_id)}",
        f"  security profile {settings.security_profile}; CA to trust: {csms.certs.ca_pem}",
    ]
    if session.connected and session.boot is None:
        boots = session.received("BootNotification", since=0)
        lines.append(
            "  it connected but its BootNotification was not schema-valid" if boots
            else "  it connected but sent no BootNotification"
        )
    lines.append(f"  connection attempts seen: {len(attempts)}")
    lines += [f"    {a.summary()}" for a in attempts[-10:]]
    return "\n".join(lines)
