"""Power readings and charging limits, as the smart-charging and status suites use them.

SC-2 (the limit takes effect) and ST-2/ST-4 (the statuses that go with it) need the same acts: choose
what the meter reports (MeterValuesSampledData), read the power of a MeterValues (Power.Active.Import OR
Current.Import × Voltage), wait for a reading that shows an effect, and set or lift a limit in amps
as a TxProfile or, if the charger takes only that, a ChargePointMaxProfile (the SC-1 alternatives).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from harness import meter, spec16
from harness.errors import CallErrorReceived, ExpectationTimeout, NoAnswer
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

TX_PROFILE = "TxProfile"
CP_MAX_PROFILE = "ChargePointMaxProfile"
TX_PROFILE_ID = 9101  # the harness's own profile ids, so ClearChargingProfile(id) touches nothing else
CP_MAX_PROFILE_ID = 9102
NOMINAL_VOLTAGE = Decimal(230)  # V phase-to-neutral, when the charger reports no Voltage
MIN_PILOT_CURRENT = Decimal(6)  # A: IEC 61851-1, the lowest current a charger can offer
ZERO_FLOOR_W = Decimal(100)  # "≈ 0": at most this, or 2 % of the unlimited power if that is more
ZERO_SHARE = Decimal("0.02")
CHARGING_W = Decimal(100)  # "with power": more than this
SIX_AMP_TOLERANCE = Decimal("0.15")  # ±15 % around phases × V × 6 A (EVs draw a little under the offer)
PROBE_LIMIT_A = Decimal(8)  # SC-1's limit: well under any charger's rating, above the 6 A minimum

# MeterValuesSampledData the suites ask for, most informative first (CFG-1 judges this key; here it
# only serves to see power). Per-phase current and voltage let SC-2 learn the phases and the voltage.
SAMPLED_DATA_CHOICES = (
    "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage",
    "Energy.Active.Import.Register,Power.Active.Import",
    "Energy.Active.Import.Register,Current.Import,Voltage",
)


# --- meter ----------------------------------------------------------------------------------------


async def configure_meter(charger: ChargerSession, settings: Settings) -> str | None:
    """Ask for periodic samples of power (or current and voltage) at the run's interval, before a session.

    Returns the MeterValuesSampledData value the charger accepted, or None (it keeps its own list).
    The `charger` fixture puts both keys back after the test.
    """
    interval = str(settings.meter_sample_interval)
    try:
        answer = await charger.call_raw("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": interval})
        if answer.get("status") != "Accepted":
            charger.note(f"MeterValueSampleInterval={interval} answered {answer.get('status')} (CFG-2 judges this)")
    except CallErrorReceived as exc:
        charger.note(f"MeterValueSampleInterval={interval} answered CALLERROR {exc.code} (CFG-2 judges this)")
    refused: list[str] = []
    for value in SAMPLED_DATA_CHOICES:
        try:
            answer = await charger.call_raw("ChangeConfiguration", {"key": "MeterValuesSampledData", "value": value})
        except CallErrorReceived as exc:
            refused.append(f"{value}: CALLERROR {exc.code}")
            continue
        if answer.get("status") == "Accepted":
            return value
        refused.append(f"{value}: {answer.get('status')}")
    charger.note("MeterValuesSampledData: no list with power or current+voltage was accepted (CFG-1 judges this): "
                 + "; ".join(refused))
    return None


@dataclass(frozen=True)
class Reading:
    """One MeterValues as the platform reads it: power in W, and per-phase current and voltage if sent."""

    call: ReceivedCall
    watts: Decimal | None
    how: str
    currents: dict[str, Decimal] = field(default_factory=dict)  # phase (L1..L3, or "" for total) -> A
    volts: tuple[Decimal, ...] = ()  # phase-to-neutral voltages

    @property
    def per_phase(self) -> dict[str, Decimal]:
        """Current.Import on the line conductors L1..L3 (not a total, not the neutral)."""
        return {p: a for p, a in self.currents.items() if p in ("L1", "L2", "L3")}

    @property
    def phases_drawing(self) -> int | None:
        """Phases carrying at least 1 A, if the charger reports current per phase."""
        per_phase = self.per_phase
        if not per_phase:
            return None
        return sum(1 for a in per_phase.values() if a >= 1)

    @property
    def voltage(self) -> Decimal:
        return sum(self.volts, Decimal(0)) / len(self.volts) if self.volts else NOMINAL_VOLTAGE

    def describe(self) -> str:
        if self.watts is None:
            return f"seq {self.call.seq}: no power ({self.how})"
        extra = ""
        if self.currents:
            extra = " (" + ", ".join(f"{p or 'total'} {a} A" for p, a in sorted(self.currents.items())) + ")"
        return f"seq {self.call.seq}: {self.watts:.0f} W via {self.how}{extra}"


def read(call: ReceivedCall) -> Reading:
    """The power of a MeterValues (its last meterValue entry: the newest readings)."""
    entries = call.get("meterValue") or []
    try:
        found = meter.samples(entries[-1:])
        watts, how = meter.power_w(found)
    except (meter.MeterFormatError, AttributeError, TypeError) as exc:
        return Reading(call, None, f"unreadable: {exc}")
    currents: dict[str, Decimal] = {}
    volts: list[Decimal] = []
    try:
        for s in found:
            if s.location not in (None, "Outlet"):
                continue
            if s.measurand == spec16.CURRENT_IMPORT:
                phase = (s.phase or "").split("-")[0]
                currents[phase] = currents.get(phase, Decimal(0)) + s.in_base_unit
            elif s.measurand == spec16.VOLTAGE and (s.phase is None or s.phase.endswith("-N") or s.phase in ("L1", "L2", "L3")):
                volts.append(s.in_base_unit)
    except meter.MeterFormatError:
        currents, volts = {}, []
    return Reading(call, watts, how, currents, tuple(volts))


class NoPowerData(Exception):
    """The samples cannot settle the question: none carried power (or current and voltage), or none was
    taken late enough after the change to show its effect. Power-based checks are then "not tested"."""


SETTLE = 5.0  # s: IEC 61851-1 gives the EV up to 5 s to follow a change of the offered current
NUDGE_EVERY = 2.0  # s between TriggerMessage MeterValues while waiting (when the charger does them)


def reading_bound(settings: Settings) -> float:
    """How long a change may take to show in the samples: two sample intervals, plus slack for the EV."""
    return 2 * settings.meter_sample_interval + 10


_NUDGE_REFUSED: set[str] = set()  # charger ids that do not do TriggerMessage MeterValues


async def nudge(charger: ChargerSession, connector: int) -> None:
    """Ask for a MeterValues now (TriggerMessage MeterValues, §5.17) so a reading need not wait for the next
    periodic sample. Only a shortcut: the answer is not judged, and periodic samples count as well."""
    if charger.id in _NUDGE_REFUSED:
        return
    try:
        answer = await charger.call_raw(
            "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": connector}, timeout=5
        )
    except (CallErrorReceived, NoAnswer):
        _NUDGE_REFUSED.add(charger.id)
        return
    if answer.get("status") != "Accepted":
        _NUDGE_REFUSED.add(charger.id)


async def wait_reading(
    charger: ChargerSession, connector: int, condition: Any, *, since: int, within: float, what: str
) -> Reading:
    """The first MeterValues on `connector` since `since` whose Reading satisfies `condition`.

    Periodic samples count, and so do samples asked for with TriggerMessage MeterValues every
    NUDGE_EVERY s (a charger sampling slower than asked is CFG-2's finding, not a reason to miss
    the effect here). Raises NoPowerData if no sample carried power, or none arrived SETTLE s or
    more after the wait began (so the effect could not show yet); ExpectationTimeout, listing the
    samples, if late enough samples with power did not satisfy `condition`.
    """
    readings: dict[int, Reading] = {}

    def match(call: ReceivedCall) -> bool:
        if call.get("connectorId") != connector:
            return False
        reading = readings.setdefault(call.seq, read(call))
        return reading.watts is not None and bool(condition(reading))

    factor = charger.settings.timeout_factor
    began = time.monotonic()
    deadline = began + within * factor
    statuses = charger.trace.next_seq  # a status change from here on is the charger reporting its reaction

    def reported(call: ReceivedCall) -> bool:
        return call.get("connectorId") == connector

    while (remaining := (deadline - time.monotonic()) / factor) > 0:
        await nudge(charger, connector)
        step = max(min(remaining, within if charger.id in _NUDGE_REFUSED else NUDGE_EVERY), 0.01)
        sample = asyncio.ensure_future(
            charger.expect("MeterValues", where=match, within=step, since=since, describe=what)
        )
        waits = {sample}
        if charger.id not in _NUDGE_REFUSED:
            # When the charger reports a status change on the connector (SuspendedEVSE under a 0 A limit,
            # Charging when it is lifted), its reaction has happened: ask for a sample at once rather than
            # waiting for the next periodic one or the next nudge.
            waits.add(asyncio.ensure_future(
                charger.expect("StatusNotification", where=reported, within=step, since=statuses)
            ))
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits - {sample} if sample.done() else waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        if sample.done() and not sample.cancelled() and sample.exception() is None:
            return readings[sample.result().seq]
        for task in done - {sample}:
            if not task.cancelled() and task.exception() is None:
                statuses = task.result().seq + 1
    seen = [r for _, r in sorted(readings.items())]
    powered = [r for r in seen if r.watts is not None]
    if not powered:
        raise NoPowerData(
            f"no MeterValues with Power.Active.Import or Current.Import+Voltage on connector {connector} "
            f"arrived ({len(seen)} MeterValues without power)"
        )
    late = [r for r in powered if r.call.mono >= began + SETTLE * factor]
    if not late:
        raise NoPowerData(
            f"no MeterValues with power arrived {SETTLE:g} s or more after the change (the last: "
            f"{powered[-1].describe()})"
        )
    raise ExpectationTimeout(
        f"expected {what} within {within * factor:g} s; the samples that arrived:\n  "
        + "\n  ".join(r.describe() for r in seen[-12:])
    )


def near_zero(watts: Decimal, reference: Decimal | None) -> bool:
    floor = max(ZERO_FLOOR_W, ZERO_SHARE * reference) if reference else ZERO_FLOOR_W
    return watts <= floor


# --- charging profiles ----------------------------------------------------------------------------


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def charging_profile(profile_id: int, purpose: str, amps: Decimal | int, transaction_id: int | None = None) -> dict[str, Any]:
    """One flat current limit, in force from now on (an Absolute schedule started an hour ago, no end,
    so a charger clock off by minutes still applies it at once)."""
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "startSchedule": _utc(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)),
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": Decimal(amps)}],
        },
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


async def set_profile(charger: ChargerSession, connector: int, profile: dict[str, Any]) -> str:
    """SetChargingProfile; the status, or "CALLERROR <code>"."""
    try:
        answer = await charger.call_raw("SetChargingProfile", {"connectorId": connector, "csChargingProfiles": profile})
    except CallErrorReceived as exc:
        return f"CALLERROR {exc.code}"
    return str(answer.get("status"))


@dataclass(frozen=True)
class Applied:
    purpose: str
    connector: int
    profile_id: int


async def apply_limit(charger: ChargerSession, connector: int, transaction_id: int, amps: Decimal | int) -> Applied:
    """Limit the charger to `amps` per phase the way SC-1 allows: a TxProfile for the running
    transaction, else (Rejected) a ChargePointMaxProfile on connector 0. Reuses the purpose that
    worked earlier in this test. Raises LimitRefused if the charger takes neither."""
    tried: list[str] = []
    preferred = charger.details.get("limit_purpose")
    order = [CP_MAX_PROFILE, TX_PROFILE] if preferred == CP_MAX_PROFILE else [TX_PROFILE, CP_MAX_PROFILE]
    for purpose in order:
        if purpose == TX_PROFILE:
            target, pid = connector, TX_PROFILE_ID
            profile = charging_profile(pid, TX_PROFILE, amps, transaction_id)
        else:
            target, pid = 0, CP_MAX_PROFILE_ID
            profile = charging_profile(pid, CP_MAX_PROFILE, amps)
        status = await set_profile(charger, target, profile)
        if status == "Accepted":
            charger.details["limit_purpose"] = purpose
            return Applied(purpose, target, pid)
        tried.append(f"{purpose} on connector {target}: {status}")
    raise LimitRefused(f"the charger took no {amps} A limit: " + "; ".join(tried))


class LimitRefused(AssertionError):
    """Neither a TxProfile nor a ChargePointMaxProfile was Accepted (SC-1's finding)."""


async def lift_limit(charger: ChargerSession, applied: Applied) -> str:
    """ClearChargingProfile of the harness's profile; if the charger does not clear it, replace it by a
    32 A limit (what the platform would do to switch back on). Returns how the limit was lifted."""
    try:
        answer = await charger.call_raw("ClearChargingProfile", {"id": applied.profile_id})
        if answer.get("status") == "Accepted":
            return "ClearChargingProfile"
        how = f"ClearChargingProfile answered {answer.get('status')}"
    except CallErrorReceived as exc:
        how = f"ClearChargingProfile answered CALLERROR {exc.code}"
    tx_id = None
    if applied.purpose == TX_PROFILE:
        active = [t for t in charger.active_transactions() if t.connector_id == applied.connector]
        tx_id = active[0].transaction_id if active else None
    status = await set_profile(
        charger, applied.connector, charging_profile(applied.profile_id, applied.purpose, 32, tx_id)
    )
    assert status == "Accepted", f"could not lift the limit: {how}, and a 32 A {applied.purpose} answered {status}"
    charger.note(f"{how}; the limit was lifted with a 32 A {applied.purpose} instead")
    return f"a 32 A {applied.purpose}"
