"""The reference charger's metering: the physics loop that applies charging limits to the EVs, and the
meter values (§4.7) it samples (periodic, clock-aligned, transaction begin/end).

A mixin of ReferenceCharger (harness/sim/charger.py): its methods use the charger's state on `self`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from typing import Any

from harness import spec16
from harness.sim.common import ChargerRoom, _iso
from harness.sim.defects import DefectName
from harness.sim.model import Snapshot, Transaction


class MeteringMixin(ChargerRoom):
    # ============================================================================================
    # status, physics, smart charging
    # ============================================================================================

    def _changed(self) -> None:
        """Re-derive statuses from the model; queue a StatusNotification for each change."""
        for change in self.model.update(time.monotonic()):
            self._enqueue_status(change)
        self._physics_wake.set()
        self._bump()

    def _apply_limits(self, *, at_once: bool = False) -> None:
        """Give the EVSE (and so the EV) the limits of the profiles in force. After a profile change the old
        limits hold for limit_delay (`_limits_changed`); a transaction starting or ending sets them at once."""
        # Firmware bug "profile-no-effect": profiles are stored but the EVSE is never told about them.
        if DefectName.PROFILE_NO_EFFECT in self.defects:
            return
        now = time.monotonic()
        if not at_once and now < self._limits_settle_at:
            return
        now_dt = self._clock()
        for cid in self.model.connectors:
            limit = self.profiles.limit_at(cid, now_dt)
            self.model.set_limit(cid, limit.amps, limit.number_phases, now)

    async def _physics(self) -> None:
        """Keeps the EVs, the meters and the time-dependent limits current; reports what changed."""
        while True:
            self._physics_wake.clear()
            self._apply_limits()
            for change in self.model.update(time.monotonic()):
                self._enqueue_status(change)
            timeout = self.config.tick
            until_full = self.model.seconds_until_next_event()
            if until_full is not None:
                timeout = max(0.01, min(timeout, until_full + 0.01))
            until_limits = self._limits_settle_at - time.monotonic()
            if until_limits > 0:
                timeout = max(0.001, min(timeout, until_limits))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._physics_wake.wait()

    def _limits_changed(self) -> None:
        """A profile was set or cleared: the EV draws the new limit limit_delay later (another change restarts it)."""
        self._limits_settle_at = time.monotonic() + self.config.limit_delay
        self._physics_wake.set()

    # ============================================================================================
    # meter values (§4.7)
    # ============================================================================================

    def _sample_interval(self) -> int:
        # Firmware bug "ignores-sample-interval": the sampler uses the value read at power-on.
        if DefectName.IGNORES_SAMPLE_INTERVAL in self.defects:
            return self._boot_sample_interval
        return self.configuration.int("MeterValueSampleInterval")

    async def _periodic_samples(self, connector: int, tx: Transaction) -> None:
        """Sample.Periodic every MeterValueSampleInterval seconds from the start of the transaction."""
        loop = asyncio.get_running_loop()
        base = loop.time()
        count = 0
        while True:
            event = self._config_event
            interval = self._sample_interval()
            if interval <= 0:
                await event.wait()
                base, count = loop.time(), 0
                continue
            due = base + (count + 1) * interval
            try:
                async with asyncio.timeout(max(0.0, due - loop.time())):
                    await event.wait()
                if self._sample_interval() != interval:
                    base, count = loop.time(), 0  # a new interval counts from now
                continue
            except TimeoutError:
                pass
            count += 1
            if self.model.connector(connector).transaction is not tx:
                return
            snap = self.model.snapshot(connector, time.monotonic())
            values = self._sampled_values(snap, self.configuration.list("MeterValuesSampledData"),
                                          spec16.CONTEXT_PERIODIC, tx)
            if values:
                self._enqueue_tx("MeterValues", {
                    "connectorId": connector,
                    "meterValue": [{"timestamp": self._timestamp(), "sampledValue": values}],
                }, tx.handle)

    async def _clock_aligned(self) -> None:
        """Sample.Clock at every multiple of ClockAlignedDataInterval after midnight (§9.1.3)."""
        while True:
            event = self._config_event
            interval = self.configuration.int("ClockAlignedDataInterval")
            if interval <= 0:
                await event.wait()
                continue
            now = self._clock()
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            elapsed = (now - midnight).total_seconds()
            due = midnight + dt.timedelta(seconds=math.floor(elapsed / interval + 1) * interval)
            due = min(due, midnight + dt.timedelta(days=1))
            try:
                async with asyncio.timeout(max(0.0, (due - now).total_seconds())):
                    await event.wait()
                continue
            except TimeoutError:
                pass
            self._send_clock_aligned(due)

    def _send_clock_aligned(self, at: dt.datetime) -> None:
        measurands = self.configuration.list("MeterValuesAlignedData")
        stop_measurands = self.configuration.list("StopTxnAlignedData")
        for cid, c in self.model.connectors.items():
            snap = self.model.snapshot(cid, time.monotonic())
            tx = c.transaction
            if tx is not None and stop_measurands:
                values = self._sampled_values(snap, stop_measurands, spec16.CONTEXT_CLOCK, tx)
                if values:
                    state = self._tx_state_for(cid)
                    state.aligned.append({"timestamp": _iso(at), "sampledValue": values})
                    del state.aligned[:-100]
            if not measurands:
                continue
            values = self._sampled_values(snap, measurands, spec16.CONTEXT_CLOCK, tx)
            if not values:
                continue
            payload = {"connectorId": cid, "meterValue": [{"timestamp": _iso(at), "sampledValue": values}]}
            if tx is not None:
                self._enqueue_tx("MeterValues", payload, tx.handle)
            elif self._connected.is_set():
                self._enqueue("MeterValues", payload)

    def _sampled_values(self, snap: Snapshot, measurands: list[str], context: str,
                        tx: Transaction | None) -> list[dict[str, Any]]:
        """The meter's readings as SampledValue objects (§7.43), for the configured measurands."""
        d = self.defects
        # Variant "kw-units" (allowed by MV-2): energy in kWh, power in kW.
        kw = DefectName.KW_UNITS in d
        out: list[dict[str, Any]] = []

        def add(measurand: str, value: str, unit: str | None, *, phase: str | None = None,
                location: str = "Outlet") -> None:
            sv: dict[str, Any] = {"value": value, "context": context, "format": "Raw", "measurand": measurand,
                                  "location": location}
            if phase is not None:
                sv["phase"] = phase
            if unit is not None:
                sv["unit"] = unit
            out.append(sv)

        power = snap.power_w
        if tx is not None and context == spec16.CONTEXT_PERIODIC:
            state = self._tx_state_for(tx.connector_id)
            # Firmware bug "power-not-zero-when-suspended": the power reading is not refreshed once the current stops.
            if DefectName.POWER_NOT_ZERO_WHEN_SUSPENDED in d and power == 0.0 and state.last_power_w > 0:
                power = state.last_power_w
            if snap.power_w > 0:
                state.last_power_w = snap.power_w
        # Firmware bug "power-mismatch-energy": power from the line-to-line voltage (400 V) instead of 230 V.
        if DefectName.POWER_MISMATCH_ENERGY in d:
            power = power * math.sqrt(3)
        # Defect "no-power-measurand" (breaks MV-1): the meter driver reports energy only.
        meter_can_power = not (DefectName.NO_POWER_MEASURAND in d)

        for m in measurands:
            if m == spec16.ENERGY_IMPORT_REGISTER:
                wh = math.floor(snap.register_wh)
                # Firmware bug "energy-decreasing": sign error, meterStart minus the energy delivered.
                if DefectName.ENERGY_DECREASING in d and tx is not None and context == spec16.CONTEXT_PERIODIC:
                    wh = tx.meter_start_wh - (wh - tx.meter_start_wh)
                # Defect "wrong-energy-units" (breaks MV-2): the kWh number labelled Wh.
                if DefectName.WRONG_ENERGY_UNITS in d:
                    add(m, f"{wh / 1000:.3f}", "Wh")  # the kWh number, labelled Wh
                elif kw:
                    add(m, f"{wh / 1000:.3f}", "kWh")
                else:
                    add(m, str(wh), "Wh")
            elif m == spec16.POWER_IMPORT and meter_can_power:
                add(m, f"{power / 1000:.3f}", "kW") if kw else add(m, f"{power:.1f}", "W")
            elif m == spec16.POWER_OFFERED:
                offered = snap.offered_w
                add(m, f"{offered / 1000:.3f}", "kW") if kw else add(m, f"{offered:.1f}", "W")
            elif m == spec16.CURRENT_IMPORT and meter_can_power:
                for i, amps in enumerate(snap.currents):
                    add(m, f"{amps:.1f}", "A", phase=f"L{i + 1}")
            elif m == spec16.VOLTAGE and meter_can_power:
                # Firmware bug "current-without-voltage": the voltage channel is never read.
                if DefectName.CURRENT_WITHOUT_VOLTAGE in d:
                    continue
                for i, volts in enumerate(snap.voltages):
                    add(m, f"{volts:.1f}", "V", phase=f"L{i + 1}-N")
            elif m == spec16.CURRENT_OFFERED:
                add(m, f"{snap.offered_a:.1f}", "A")
            elif m == spec16.SOC:
                if snap.soc is not None:
                    add(m, str(int(snap.soc)), "Percent", location="EV")
        return out
