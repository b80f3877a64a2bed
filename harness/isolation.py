"""Between tests, the charger put back: each test starts from an idle charger with the run's configuration.

Before a test (the `charger` fixture, harness/fixtures.py): `ensure_idle` stops what a previous test left
running and waits until every connector is available again; the first test reads the configuration baseline
(`configuration_baseline`). After it: `put_back` undoes the rig's acts, clears the charging profiles the test
set, and puts back the configuration keys it changed. What cannot be put back makes the next test "not tested"
(ChargerNotIdle), never a charger failure, unless the charger itself broke a requirement (ST-1).
"""

from __future__ import annotations

import contextlib

from ocpp.v16 import call
from ocpp.v16.enums import RemoteStartStopStatus

from harness.errors import ChargerFailure, ExpectationTimeout
from harness.rig import Rig
from harness.run_state import RunState
from harness.session import ChargerSession


async def put_back(session: ChargerSession, rig: Rig, state: RunState) -> None:
    """What a test changed, undone: the rig's acts, charging profiles, configuration keys."""
    with contextlib.suppress(Exception):
        await rig.undo()
    if any(a == "SetChargingProfile" or (a == "RemoteStartTransaction" and "chargingProfile" in p)
           for a, p in session.sent_calls) and session.connected:
        with contextlib.suppress(Exception):
            await session.call(call.ClearChargingProfile())
    await _restore_configuration(session, state)


async def ensure_idle(session: ChargerSession, rig: Rig, state: RunState) -> None:
    """Stop what a previous test left running; wait until every connector is available again."""
    for tx in session.active_transactions():
        with contextlib.suppress(Exception):
            answer = await session.call(call.RemoteStopTransaction(transaction_id=tx.transaction_id))
            if answer.status != RemoteStartStopStatus.accepted:
                # The charger does not know it (e.g. it lost the StopTransaction): nothing to wait for.
                tx.stopped = tx.started
                continue
            await session.expect(
                "StopTransaction", where={"transactionId": tx.transaction_id}, within=10, since=tx.started.seq
            )
    with contextlib.suppress(Exception):
        await rig.undo()
    busy = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Faulted"}

    def idle() -> bool:
        return session.connected and not any(s in busy for c, s in session.connector_status.items() if c > 0)

    stuck = state.stuck
    if stuck is not None and not idle() and len(session.status_history) == stuck[0]:
        # Nothing changed since the last test found it stuck: do not wait again, say so at once.
        raise ChargerNotIdle(stuck[1])
    try:
        await session.wait_until(idle, 15, "the charger to be idle")
    except ExpectationTimeout:
        statuses = ", ".join(f"connector {c}: {s}" for c, s in sorted(session.connector_status.items()))
        unplugged_but_busy = [
            c for c, s in session.connector_status.items()
            if c > 0 and s in busy - {"Faulted"} and c not in rig.plugged and not session.active_transactions()
        ]
        if unplugged_but_busy and state.stuck is None:
            # ST-1: "Available: the vehicle is unplugged". The rig unplugged the EV and no transaction runs.
            state.stuck = (len(session.status_history), f"charger not idle: {statuses} after the EV was unplugged")
            raise ChargerFailure(
                f"expected connector(s) {unplugged_but_busy} to report Available once the EV was unplugged and no "
                f"transaction ran (OCPP 1.6 §4.9; ST-1); after 15 s they still report: {statuses}",
                requirements=("ST-1",),
            )
        reason = (
            "charger not idle: this test needs an idle charger (no connector preparing, charging, suspended, "
            f"finishing or faulted) and the charger stayed {statuses or 'without status'} for "
            f"{session.settings.scaled(15):g} s after the previous test's session was stopped and its EV unplugged; "
            "the requirement behind that is judged by its own test"
        )
        state.stuck = (len(session.status_history), reason)
        raise ChargerNotIdle(reason) from None
    state.stuck = None


class ChargerNotIdle(RuntimeError):
    """Setup could not bring the charger back to idle: the test cannot run (incomplete, not failed)."""


async def configuration_baseline(session: ChargerSession) -> tuple[dict[str, str | None], frozenset[str]]:
    try:
        answer = await session.call(call.GetConfiguration())
    except ChargerFailure:
        return {}, frozenset()
    values: dict[str, str | None] = {}
    readonly: set[str] = set()
    for entry in answer.configuration_key or []:
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            values[entry["key"]] = entry.get("value")
            if entry.get("readonly"):
                readonly.add(entry["key"])
    return values, frozenset(readonly)


async def _restore_configuration(session: ChargerSession, state: RunState) -> None:
    """Put back configuration keys a test changed (not AuthorizationKey: its suite restores it)."""
    if not state.baseline_config or not session.connected:
        return
    changed = {
        p.get("key")
        for action, p in session.sent_calls
        if action == "ChangeConfiguration" and p.get("key") != "AuthorizationKey"
    }
    for key in sorted(k for k in changed if isinstance(k, str)):
        if key in state.readonly_keys or key not in state.baseline_config:
            continue
        original = state.baseline_config[key]
        if original is None:
            continue
        with contextlib.suppress(Exception):
            await session.call(call.ChangeConfiguration(key=key, value=original))
