"""The reference charger's answers to the central system's requests of the Core, Smart Charging and Remote
Trigger profiles (§5), except the transaction ones (transactions.py) and transfers (transfers.py).

A mixin of ReferenceCharger (harness/sim/charger.py): its methods use the charger's state on `self`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from harness import spec16
from harness.sim.common import ChargerRoom
from harness.sim.defects import DefectName

log = logging.getLogger("harness.sim.charger")


class HandlersMixin(ChargerRoom):
    # --- Core ----------------------------------------------------------------------------------

    async def _on_GetConfiguration(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:  # noqa: N802
        known, unknown = self.configuration.get(p.get("key"))
        answer: dict[str, Any] = {"configurationKey": known}
        if unknown:
            answer["unknownKey"] = unknown
        return answer, None

    async def _on_ChangeConfiguration(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        key, value = p["key"], p["value"]
        canonical = self.configuration.canonical(key)
        # Firmware bugs "rejects-sampled-data" / "rejects-sample-interval": the key's setter refuses every value.
        if canonical == "MeterValuesSampledData" and DefectName.REJECTS_SAMPLED_DATA in self.defects:
            return {"status": "Rejected"}, None
        # Defect "rejects-sample-interval" (breaks CFG-2): ChangeConfiguration MeterValueSampleInterval Rejected.
        if canonical == "MeterValueSampleInterval" and DefectName.REJECTS_SAMPLE_INTERVAL in self.defects:
            return {"status": "Rejected"}, None
        if canonical == spec16.KEY_AUTHORIZATION_KEY:
            # Variant "key-change-not-supported": the key is provisioned another way, not over OCPP.
            if DefectName.KEY_CHANGE_NOT_SUPPORTED in self.defects:
                return {"status": "NotSupported"}, None
            # ADV-2 defect "ignores-new-authorization-key": the setter is a no-op that reports success.
            if DefectName.IGNORES_NEW_AUTHORIZATION_KEY in self.defects:
                return {"status": "Accepted"}, None
            # Variant "rejects-key-reuse": a key it has held before is refused (no key reuse).
            if DefectName.REJECTS_KEY_REUSE in self.defects:
                if value in self._used_keys:
                    return {"status": "Rejected"}, None
                self._used_keys.add(value)
        status = self.configuration.change(key, value)
        after = None
        if canonical == spec16.KEY_AUTHORIZATION_KEY and status == "Accepted":
            # Variant "key-change-reboot-required": the key is stored and read at the next boot (OCPP §7.13).
            if DefectName.KEY_CHANGE_REBOOT_REQUIRED in self.defects:
                return {"status": "RebootRequired"}, None
            after = self._new_authorization_key
        return {"status": status}, after

    def _new_authorization_key(self) -> None:
        self._active_key = self.configuration.value("AuthorizationKey")
        if self.config.security_profile == 3:
            return  # profile 3 does not use the key
        # Variant "keeps-connection-after-key-change": the new key is used from the next connection on.
        if self._variant(DefectName.KEEPS_CONNECTION_AFTER_KEY_CHANGE):
            return
        # Whitepaper: reconnect with the new key once the answer is out.
        self._spawn(self._reconnect_now(), "reconnect-new-key")

    async def _reconnect_now(self) -> None:
        ws = self._ws
        if ws is None:
            return
        self._deliberate_close = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await ws.close(1000, "AuthorizationKey changed")

    def _on_config_change(self, key: str, old: str, new: str) -> None:
        ev, self._config_event = self._config_event, asyncio.Event()
        ev.set()

    async def _on_ChangeAvailability(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        cid = p["connectorId"]
        if not 0 <= cid <= len(self.model.connectors):
            return {"status": "Rejected"}, None
        status = self.model.change_availability(cid, p["type"] == "Operative")
        return {"status": status}, self._changed

    async def _on_ClearCache(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:  # noqa: N802
        self.auth_cache.clear()
        return {"status": "Accepted"}, None

    async def _on_DataTransfer(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:  # noqa: N802
        if p["vendorId"] == self.config.vendor:
            return {"status": "UnknownMessageId"}, None
        return {"status": "UnknownVendorId"}, None

    async def _on_Reset(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:  # noqa: N802
        kind = p["type"]

        def after() -> None:
            self._spawn_detached(self._reset(kind))

        return {"status": "Accepted"}, after

    async def _reset(self, kind: str) -> None:
        reason = "SoftReset" if kind == "Soft" else "HardReset"
        if kind == "Soft":
            # §5.14: stop transactions gracefully, send their StopTransaction, then restart.
            for tx in self.model.transactions():
                self._stop_transaction(tx.connector_id, reason)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.soft_reset_timeout):
                    while len(self.tx_queue) and self._connected.is_set():
                        await self._wait_progress()
        await self._reboot(reason)

    async def _on_UnlockConnector(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        cid = p["connectorId"]
        if not 1 <= cid <= len(self.model.connectors):
            return {"status": "NotSupported"}, None
        if self.model.connector(cid).transaction is not None:
            return {"status": "Unlocked"}, lambda: self._stop_transaction(cid, "UnlockCommand")
        return {"status": "Unlocked"}, None

    # --- Smart Charging --------------------------------------------------------------------------

    async def _on_SetChargingProfile(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        cid = p["connectorId"]
        profile = p["csChargingProfiles"]
        purpose = profile.get("chargingProfilePurpose")
        # Firmware bug "rejects-all-profiles".
        if DefectName.REJECTS_ALL_PROFILES in self.defects:
            return {"status": "Rejected"}, None
        # Variant "txprofile-only" (allowed by SC-1): ChargePointMaxProfile Rejected.
        if DefectName.TXPROFILE_ONLY in self.defects and purpose == "ChargePointMaxProfile":
            return {"status": "Rejected"}, None
        # Variant "cpmax-only" (allowed by SC-1): TxProfile Rejected (one in RemoteStart ignored).
        if DefectName.CPMAX_ONLY in self.defects and purpose in ("TxProfile", "TxDefaultProfile"):
            return {"status": "Rejected"}, None
        tx_id = None
        if 1 <= cid <= len(self.model.connectors):
            tx = self.model.connector(cid).transaction
            if tx is not None:
                tx_id = self._tx_key(tx)
        status = self.profiles.set_profile(cid, profile, transaction_id=tx_id, now=self._clock())
        if status != "Accepted":
            log.info("%s: SetChargingProfile Rejected: %s", self.id, self.profiles.last_reason)
            return {"status": status}, None
        return {"status": status}, self._limits_changed

    async def _on_ClearChargingProfile(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        cleared = self.profiles.clear(profile_id=p.get("id"), connector_id=p.get("connectorId"),
                                      purpose=p.get("chargingProfilePurpose"), stack_level=p.get("stackLevel"))
        return {"status": "Accepted" if cleared else "Unknown"}, self._limits_changed if cleared else None

    async def _on_GetCompositeSchedule(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:  # noqa: N802
        cid = p["connectorId"]
        unit = p.get("chargingRateUnit")
        allowed = [spec16.RATE_UNIT_WORDS.get(w) for w in self.configuration.list("ChargingScheduleAllowedChargingRateUnit")]
        if unit is not None and unit not in allowed:
            return {"status": "Rejected"}, None
        schedule = self.profiles.composite_schedule(cid, p["duration"], unit, now=self._clock())
        if schedule is None:
            return {"status": "Rejected"}, None
        return {"status": "Accepted", "connectorId": cid, "scheduleStart": schedule["startSchedule"],
                "chargingSchedule": schedule}, None

    # --- Remote Trigger (§5.17) ------------------------------------------------------------------

    async def _on_TriggerMessage(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        requested = p["requestedMessage"]
        cid = p.get("connectorId")
        if cid is not None and not 0 <= cid <= len(self.model.connectors):
            return {"status": "Rejected"}, None
        if requested not in spec16.TRIGGERABLE_MESSAGES:
            return {"status": "NotImplemented"}, None
        return {"status": "Accepted"}, lambda: self._triggered(requested, cid)

    def _triggered(self, requested: str, cid: int | None) -> None:
        if requested == "BootNotification":
            # Firmware bug "trigger-boot-silent".
            if DefectName.TRIGGER_BOOT_SILENT in self.defects:
                return
            if not self._accepted.is_set():
                self._boot_now.set()  # the boot procedure sends it now (Pending)
                return

            def on_boot(response: dict[str, Any]) -> None:
                interval = response.get("interval")
                if response.get("status") == "Accepted" and isinstance(interval, int):
                    self._heartbeat_interval_from_boot(interval)

            self._enqueue("BootNotification", self._boot_payload(), triggered=True, on_result=on_boot)
        elif requested == "Heartbeat":
            self._enqueue("Heartbeat", {}, triggered=True)
        elif requested == "StatusNotification":
            # Firmware bug "trigger-status-silent".
            if DefectName.TRIGGER_STATUS_SILENT in self.defects:
                return
            for change in self.model.current_statuses():
                if cid is None or change.connector_id == cid:
                    self._enqueue_status(change, triggered=True)
        elif requested == "MeterValues":
            targets = [cid] if cid else list(self.model.connectors)
            for target in targets:
                c = self.model.connector(target)
                snap = self.model.snapshot(target, time.monotonic())
                # Nothing configured: the register, the measurand a SampledValue defaults to (§7.43).
                measurands = self.configuration.list("MeterValuesSampledData") or [spec16.ENERGY_IMPORT_REGISTER]
                values = self._sampled_values(snap, measurands, spec16.CONTEXT_TRIGGER, c.transaction)
                payload: dict[str, Any] = {"connectorId": target,
                                           "meterValue": [{"timestamp": self._timestamp(), "sampledValue": values}]}
                if c.transaction is not None and c.transaction.handle.transaction_id is not None:
                    payload["transactionId"] = c.transaction.handle.transaction_id
                if values:
                    self._enqueue("MeterValues", payload, triggered=True)
        elif requested == "DiagnosticsStatusNotification":
            self._enqueue("DiagnosticsStatusNotification", {"status": self.diagnostics_status}, triggered=True)
        elif requested == "FirmwareStatusNotification":
            self._enqueue("FirmwareStatusNotification", {"status": self.firmware_status}, triggered=True)
