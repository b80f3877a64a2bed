"""The reference charger's transactions: authorization (§4.1), Start/StopTransaction (§4.8, §4.10), the
connection timeout, and RemoteStart/RemoteStopTransaction (§5.11, §5.12).

A mixin of ReferenceCharger (harness/sim/charger.py): its methods use the charger's state on `self`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from harness import spec16
from harness.sim.common import ChargerRoom, CallErrorReceived, NotConnected, _TxState, _iso
from harness.sim.defects import DefectName
from harness.sim.model import Transaction
from harness.sim.offline import TxRef

log = logging.getLogger("harness.sim.charger")


class TransactionsMixin(ChargerRoom):
    # ============================================================================================
    # authorization and transactions (§4.1, §4.8, §4.10)
    # ============================================================================================

    async def _authorize_flow(self, connector: int, id_tag: str) -> None:
        status = await self._authorize_tag(id_tag)
        if status != "Accepted":
            log.info("%s: idTag %s not authorized (%s)", self.id, id_tag, status)
            return
        c = self.model.connector(connector)
        if c.transaction is not None or not self.model.can_start(connector):
            return
        if c.plugged:
            self._start_transaction(connector, id_tag)
        else:
            self.model.authorize_before_plug(connector, id_tag, time.monotonic())
            self._pending_remote.pop(connector, None)
            self._arm_connection_timer(connector)
            self._changed()

    async def _authorize_tag(self, id_tag: str) -> str:
        cached = self.auth_cache.get(id_tag)
        if cached == "Accepted" and self.configuration.bool("LocalPreAuthorize") and self._cache_enabled():
            return "Accepted"
        if self._accepted.is_set() and self._connected.is_set():
            future = self._enqueue("Authorize", {"idTag": id_tag}, want_result=True)
            assert future is not None
            try:
                response = await future
                info = response.get("idTagInfo") or {}
                status = str(info.get("status", "Invalid"))
                if self._cache_enabled():
                    self.auth_cache[id_tag] = status
                return status
            except (NotConnected, CallErrorReceived, TimeoutError) as exc:
                log.info("%s: Authorize failed (%s): authorizing offline", self.id, exc)
        # Offline (§3.5): the cache, then AllowOfflineTxForUnknownId.
        if self.configuration.bool("LocalAuthorizeOffline") and cached == "Accepted" and self._cache_enabled():
            return "Accepted"
        if self.configuration.bool("AllowOfflineTxForUnknownId"):
            return "Accepted"
        return cached or "Invalid"

    def _cache_enabled(self) -> bool:
        return self.configuration.bool("AuthorizationCacheEnabled")

    def _arm_connection_timer(self, connector: int) -> None:
        """ConnectionTimeOut: an authorization (or a plug without one) that leads to no session expires."""
        self._cancel_connection_timer(connector)
        c = self.model.connector(connector)
        if c.authorized_tag is None:
            return  # a plugged EV waits for a card as long as it stays plugged
        timeout = self.configuration.int("ConnectionTimeOut")
        self._connection_timers[connector] = asyncio.get_running_loop().call_later(
            timeout, self._connection_timed_out, connector)

    def _cancel_connection_timer(self, connector: int) -> None:
        handle = self._connection_timers.pop(connector, None)
        if handle is not None:
            handle.cancel()

    def _connection_timed_out(self, connector: int) -> None:
        self._connection_timers.pop(connector, None)
        c = self.model.connector(connector)
        if c.transaction is None and not c.plugged and c.authorized_tag is not None:
            log.info("%s: ConnectionTimeOut on connector %d", self.id, connector)
            self.model.clear_authorization(connector)
            self._pending_remote.pop(connector, None)
            self._changed()

    def _tx_state_for(self, connector: int) -> _TxState:
        return self._tx_state.setdefault(connector, _TxState())

    def _tx_key(self, tx: Transaction) -> int:
        ref: TxRef = tx.handle
        return ref.transaction_id if ref.transaction_id is not None else -ref.local_id

    def _start_transaction(self, connector: int, id_tag: str, *, remote: bool = False,
                           profile: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        ref = TxRef()
        for change in self.model.start_transaction(connector, ref, id_tag, now, remote=remote):
            self._enqueue_status(change)
        self._cancel_connection_timer(connector)
        tx = self.model.connector(connector).transaction
        assert tx is not None
        started = self._clock()
        tx.started_at = started
        self._tx_state[connector] = _TxState()
        self._enqueue_tx("StartTransaction", {
            "connectorId": connector,
            "idTag": id_tag,
            "meterStart": tx.meter_start_wh,
            "timestamp": _iso(started),
        }, ref)
        self.profiles.transaction_started(connector, self._tx_key(tx), started)
        if profile is not None:
            status = self.profiles.set_profile(connector, profile, transaction_id=self._tx_key(tx), now=started)
            log.info("%s: RemoteStart TxProfile %s (%s)", self.id, status, self.profiles.last_reason or "")
        self._apply_limits(at_once=True)
        self._changed()
        self._tx_state[connector].sampler = self._spawn(self._periodic_samples(connector, tx), f"sampler-{connector}")

    def _on_start_answer(self, ref: TxRef, response: dict[str, Any]) -> None:
        self._bump()  # a RemoteStop may be waiting for this transaction's id
        for cid, c in self.model.connectors.items():
            tx = c.transaction
            if tx is None or tx.handle is not ref:
                continue
            if ref.transaction_id is not None:
                # TxProfiles bound to the provisional id (e.g. from RemoteStart) move to the real one.
                bound = [p["csChargingProfiles"] for p in self.profiles.profiles(cid)
                         if p["csChargingProfiles"].get("chargingProfilePurpose") == "TxProfile"]
                assert tx.started_at is not None  # set with the transaction, before its StartTransaction was queued
                self.profiles.transaction_started(cid, ref.transaction_id, tx.started_at)
                for profile in bound:
                    self.profiles.set_profile(cid, profile, transaction_id=ref.transaction_id, now=self._clock())
            info = response.get("idTagInfo") or {}
            status = info.get("status")
            if self._cache_enabled() and isinstance(status, str):
                self.auth_cache[tx.id_tag] = status
            if status != "Accepted" and self.configuration.bool("StopTransactionOnInvalidId"):
                log.info("%s: StartTransaction idTagInfo %s: stopping", self.id, status)
                self._stop_transaction(cid, "DeAuthorized")

    def _stop_transaction(self, connector: int, reason: str, *, report: bool = True) -> None:
        c = self.model.connector(connector)
        if c.transaction is None:
            return
        state = self._tx_state.pop(connector, _TxState())
        if state.sampler is not None:
            state.sampler.cancel()
        tx, end = self.model.stop_transaction(connector, time.monotonic())
        with contextlib.suppress(ValueError):
            self.profiles.transaction_ended(connector)
        stopped = self._clock()
        meter_stop = int(end.register_wh)
        # Firmware bug "meter-stop-below-start": meterStop is the session's energy, not the register.
        if DefectName.METER_STOP_BELOW_START in self.defects:
            meter_stop = int(end.register_wh) - tx.meter_start_wh
        payload: dict[str, Any] = {
            "meterStop": meter_stop,
            "timestamp": _iso(stopped),
            "reason": reason,
        }
        # Variant "local-reason-omitted": §6.49 "MAY only be omitted when the Reason is Local".
        if reason == "Local" and self._variant(DefectName.LOCAL_REASON_OMITTED):
            del payload["reason"]
        if state.stop_tag is not None:
            payload["idTag"] = state.stop_tag
        data: list[dict[str, Any]] = []
        measurands = self.configuration.list("StopTxnSampledData")
        if measurands:
            begin = self._sampled_values(tx.begin, measurands, spec16.CONTEXT_TX_BEGIN, tx)
            if begin:
                data.append({"timestamp": _iso(tx.started_at or stopped), "sampledValue": begin})
        data.extend(state.aligned)
        if measurands:
            end_values = self._sampled_values(end, measurands, spec16.CONTEXT_TX_END, tx)
            if end_values:
                data.append({"timestamp": _iso(stopped), "sampledValue": end_values})
        if data:
            payload["transactionData"] = data
        self._enqueue_tx("StopTransaction", payload, tx.handle)
        self._apply_limits(at_once=True)
        if report:
            self._changed()

    async def _on_RemoteStartTransaction(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        # Firmware bug "rejects-remote-start".
        if DefectName.REJECTS_REMOTE_START in self.defects:
            return {"status": "Rejected"}, None
        if not self._accepted.is_set():
            return {"status": "Rejected"}, None  # §4.2.1: not while Pending
        id_tag = p["idTag"]
        cid = p.get("connectorId")
        if cid is None:
            free = [c for c in self.model.connectors.values() if c.transaction is None and self.model.can_start(c.connector_id)
                    and c.authorized_tag is None]
            plugged = [c for c in free if c.plugged]
            cid = (plugged or free)[0].connector_id if (plugged or free) else None
        if cid is None or not 1 <= cid <= len(self.model.connectors):
            return {"status": "Rejected"}, None
        c = self.model.connector(cid)
        if c.transaction is not None or not self.model.can_start(cid):
            return {"status": "Rejected"}, None
        profile = p.get("chargingProfile")
        if profile is not None:
            if profile.get("chargingProfilePurpose") != "TxProfile":
                return {"status": "Rejected"}, None  # §5.11: only a TxProfile may come with RemoteStart
            # Variant "cpmax-only" (allowed by SC-1): TxProfile Rejected (one in RemoteStart ignored).
            if DefectName.CPMAX_ONLY in self.defects:
                profile = None  # this charger does smart charging through ChargePointMaxProfile only

        def after() -> None:
            self._spawn(self._remote_start(cid, id_tag, profile), f"remote-start-{cid}")

        return {"status": "Accepted"}, after

    async def _remote_start(self, cid: int, id_tag: str, profile: dict[str, Any] | None) -> None:
        if self.configuration.bool("AuthorizeRemoteTxRequests"):
            status = await self._authorize_tag(id_tag)
            if status != "Accepted":
                return
        c = self.model.connector(cid)
        if c.transaction is not None or not self.model.can_start(cid):
            return
        if c.plugged:
            self._start_transaction(cid, id_tag, remote=True, profile=profile)
        else:
            self.model.authorize_before_plug(cid, id_tag, time.monotonic())
            self._pending_remote[cid] = profile
            self._arm_connection_timer(cid)
            self._changed()

    async def _on_RemoteStopTransaction(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        wanted = p["transactionId"]
        if not self._accepted.is_set():
            return {"status": "Rejected"}, None  # §4.2.1: not while Pending

        def match() -> int | None:
            for cid, c in self.model.connectors.items():
                tx = c.transaction
                if tx is not None and tx.handle.transaction_id == wanted:
                    return cid
            return None

        def numbering() -> bool:
            # A transaction whose StartTransaction.conf is on the wire or being processed: its id is coming.
            return any(c.transaction is not None and c.transaction.handle.transaction_id is None
                       and not c.transaction.handle.start_failed and self.connected
                       for c in self.model.connectors.values())

        cid = match()
        if cid is None and numbering():
            with contextlib.suppress(TimeoutError):
                await self.wait_for(lambda: match() is not None or not numbering(), timeout=2.0)
            cid = match()
        if cid is not None:
            found = cid
            return {"status": "Accepted"}, lambda: self._stop_transaction(found, "Remote")
        return {"status": "Rejected"}, None
