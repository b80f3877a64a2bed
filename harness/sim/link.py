"""The reference charger's link: TLS and Basic Auth, the connection with its backoff, frames in and out,
one outstanding CALL at a time, and the queue of outgoing messages (transaction messages kept offline, §3.7).

A mixin of ReferenceCharger (harness/sim/charger.py): its methods use the charger's state on `self`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import random
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from harness.ocppj import (
    Call,
    CallError,
    CallResult,
    FrameError,
    UnknownMessageType,
    encode_frame,
    encode_json,
    parse_frame,
    schemas,
)
from harness.sim.common import (
    ChargerRoom,
    SUBPROTOCOL,
    NON_POLICY_CIPHERS,
    _MALFORMED_REQUEST_CODES,
    _CALL_ID_RE,
    CallErrorReceived,
    NotConnected,
    _Outgoing,
    _consume,
    _redact,
)
from harness.sim.defects import DefectName
from harness.sim.model import StatusChange
from harness.sim.offline import QueuedMessage, TxRef

log = logging.getLogger("harness.sim.charger")
frame_log = logging.getLogger("harness.sim.frames")


class LinkMixin(ChargerRoom):
    # ============================================================================================
    # connection
    # ============================================================================================

    def _ssl_context(self) -> ssl.SSLContext | None:
        from harness.tls import client_context

        cfg = self.config
        # Defect "no-cert-check" (breaks TLS-3): the server certificate is not verified.
        verify = DefectName.NO_CERT_CHECK not in self.defects
        ca_file, partial_chain = self._trust_store()
        ctx = client_context(ca_file, client_cert=cfg.client_cert if cfg.security_profile == 3 else None,
                             verify=verify, partial_chain=partial_chain)
        # Defect "tls13-only" (breaks TLS-1): no TLS 1.2 handshake.
        if DefectName.TLS13_ONLY in self.defects:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_3
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        # Defect "non-policy-ciphers" (breaks TLS-1): only TLS 1.2 suites outside the ELB policy.
        if DefectName.NON_POLICY_CIPHERS in self.defects:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(NON_POLICY_CIPHERS)
        return ctx

    def _trust_store(self) -> tuple[str | None, bool]:
        """The firmware's trusted CA file, and whether a non-root certificate in it is a trust anchor."""
        ca_file = self.config.ca_file
        # Variant "trusts-intermediate-only" (allowed by TLS-3): the intermediate CA as trust anchor (partial chain).
        if DefectName.TRUSTS_INTERMEDIATE_ONLY in self.defects and ca_file is not None:
            # The installer gave it the intermediate (beside ca.pem in the harness's certs/) instead of the root.
            return os.path.join(os.path.dirname(ca_file), "intermediate.pem"), True
        return ca_file, False

    def _url(self) -> str:
        base = self.config.url.rstrip("/")
        # Defect "plain-ws" (breaks TLS-2): ws:// instead of wss://.
        if DefectName.PLAIN_WS in self.defects and base.startswith("wss://"):
            base = "ws://" + base[len("wss://"):]
        return f"{base}/{urllib.parse.quote(self.id, safe='')}"

    def _headers(self) -> dict[str, str]:
        if self.config.security_profile == 3 or self._active_key is None:
            return {}
        # Defect "no-basic-auth" (breaks AUTH-1): no Authorization header on the upgrade.
        if DefectName.NO_BASIC_AUTH in self.defects:
            return {}
        # Firmware bug "basic-auth-wrong-user": the user comes from a setting of its own, left at its factory default.
        user = "ocpp" if DefectName.BASIC_AUTH_WRONG_USER in self.defects else self.id
        password = self._active_key.encode()
        # Firmware bug "basic-auth-wrong-key": an off-by-one in the key buffer drops the key's last character.
        if DefectName.BASIC_AUTH_WRONG_KEY in self.defects:
            password = password[:-1]
        # Variant "basic-auth-decoded-key": the password is the key's hex digits decoded to bytes (whitepaper: both seen).
        if DefectName.BASIC_AUTH_DECODED_KEY in self.defects:
            with contextlib.suppress(ValueError):
                password = bytes.fromhex(self._active_key)
        token = base64.b64encode(user.encode() + b":" + password).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    async def _connect(self) -> ClientConnection:
        url = self._url()
        ping = self.configuration.int("WebSocketPingInterval")
        ws = await connect(
            url,
            ssl=self._ssl_context() if url.startswith("wss://") else None,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            additional_headers=self._headers(),
            user_agent_header=f"{self.config.vendor}-{self.config.model}/{self.firmware_version}",
            open_timeout=self.config.open_timeout,
            ping_interval=ping if ping > 0 else None,
            ping_timeout=max(10.0, ping) if ping > 0 else None,
            close_timeout=2,
            proxy=None,
            compression=None,
            max_size=1024 * 1024,
        )
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close(1002, "ocpp1.6 not agreed")
            raise ConnectionError(f"server did not agree to subprotocol {SUBPROTOCOL} (got {ws.subprotocol!r})")
        return ws

    async def _connection_loop(self) -> None:
        backoff = self.config.reconnect_backoff_min
        while True:
            await self._network_up.wait()
            try:
                ws = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: wait and try again
                # Firmware bug "gives-up-after-401": it takes a 401 for a revoked key and stops until power-cycled.
                if (DefectName.GIVES_UP_AFTER_401 in self.defects and isinstance(exc, InvalidStatus)
                        and exc.response.status_code == 401):
                    log.warning("%s: HTTP 401: this firmware stops connecting until it is power-cycled", self.id)
                    await asyncio.Event().wait()
                delay = backoff * random.uniform(0.5, 1.0)
                log.info("%s: connection failed (%s: %s); retrying in %.2f s", self.id, type(exc).__name__, exc, delay)
                backoff = min(backoff * 2, self.config.reconnect_backoff_max)
                await self._sleep_unless_network_returns(delay)
                continue
            if not self._network_up.is_set():
                ws.transport.abort()
                continue
            started = time.monotonic()
            self._deliberate_close = False
            await self._session(ws)
            if self._deliberate_close:
                backoff = self.config.reconnect_backoff_min
                continue  # e.g. a new AuthorizationKey: reconnect at once
            if self._accepted.is_set() or time.monotonic() - started > 10:
                backoff = self.config.reconnect_backoff_min
            # Firmware bug "never-reconnects": a dropped connection is never re-established (nor by a deadlocked
            # OCPP task: "falls-silent").
            if DefectName.NEVER_RECONNECTS in self.defects or self._hung:
                log.warning("%s: connection lost; this firmware never reconnects", self.id)
                await asyncio.Event().wait()
            delay = backoff * random.uniform(0.5, 1.0)
            backoff = min(backoff * 2, self.config.reconnect_backoff_max)
            await self._sleep_unless_network_returns(delay)

    async def _sleep_unless_network_returns(self, delay: float) -> None:
        """Back off; a network that was down and comes back ends the wait early (the modem reports the link)."""
        if self._network_up.is_set():
            await asyncio.sleep(delay)
        else:
            await self._network_up.wait()

    async def _session(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._connections += 1
        # Conformant variant "late-queue-flush": what was queued offline is flushed by a timer after a reconnect.
        if self._variant(DefectName.LATE_QUEUE_FLUSH) and self._accepted.is_set() and len(self.tx_queue):
            self._flush_at = time.monotonic() + self.config.late_flush_delay
        self._connected.set()
        self._disconnected.clear()
        log.info("%s: connected to %s", self.id, self._url())
        boot: asyncio.Task[None] | None = None
        if not self._accepted.is_set():
            boot = self._spawn(self._boot_procedure(), "boot")
        self._wake.set()
        try:
            await self._reader(ws)
        finally:
            self._connected.clear()
            self._disconnected.set()
            self._ws = None
            if boot is not None:
                boot.cancel()
            pending = self._pending
            if pending is not None and not pending[2].done():
                pending[2].set_exception(NotConnected("connection closed"))
            # Volatile requests cannot survive the connection; status-like notifications can.
            kept: list[_Outgoing] = []
            for item in self._outbox:
                if item.keep_offline:
                    kept.append(item)
                elif item.future is not None and not item.future.done():
                    item.future.set_exception(NotConnected("connection closed"))
            self._outbox = kept
            self._bump()
            log.info("%s: disconnected (%s)", self.id, ws.close_reason or ws.close_code)

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self._on_message(message)
        except ConnectionClosed:
            pass
        except OSError as exc:
            log.info("%s: connection error %s", self.id, exc)

    def _on_message(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        frame_log.info("%s < %s", self.id, _redact(text))
        if self._hung:
            return  # the deadlocked OCPP task never looks at it (the WebSocket layer still answers pings)
        try:
            frame = parse_frame(message)
        except UnknownMessageType as exc:
            log.warning("%s: ignoring frame: %s (OCPP-J §4.1.3)", self.id, exc.reason)
            return
        except FrameError as exc:
            match = _CALL_ID_RE.match(text) if isinstance(message, str) else None
            uid = exc.unique_id if exc.unique_id is not None else (match.group(1) if match else None)
            if match is not None and uid is not None:
                self._spawn(self._send_frame(CallError(uid, exc.code, exc.reason[:255], {})), "callerror")
            # Variant "minus-one-error-id" (allowed by ADV-1): CALLERROR id "-1" for a frame without a readable id.
            elif self._variant(DefectName.MINUS_ONE_ERROR_ID) and exc.message_type not in (3, 4):
                # Variant "minus-one-error-id": no id could be read, so the CALLERROR names "-1" (the OCPP 2.0.1
                # rule; 1.6 is silent). Never for a CALLRESULT or CALLERROR: nobody answers those.
                self._spawn(self._send_frame(CallError("-1", exc.code, exc.reason[:255], {})), "callerror")
            else:
                log.warning("%s: unusable frame (%s), no CALL id to answer: %.200s", self.id, exc.reason, text)
            return
        if isinstance(frame, Call):
            self._spawn(self._handle_call(frame), f"handle-{frame.action}")
            return
        pending = self._pending
        if pending is None or pending[0] != frame.unique_id:
            log.warning("%s: answer to an unknown CALL id %s ignored", self.id, frame.unique_id)
            return
        future = pending[2]
        if future.done():
            return
        if isinstance(frame, CallResult):
            future.set_result(frame.payload)
        else:
            future.set_exception(CallErrorReceived(frame))

    async def _send_frame(self, frame: Call | CallResult | CallError) -> bool:
        """Write one frame; False if the connection is gone."""
        ws = self._ws
        if ws is None:
            return False
        if isinstance(frame, CallError) and frame.code in _MALFORMED_REQUEST_CODES:
            # Firmware bugs "crashes-on-malformed" and "wrong-error-codes": the request parser's error path.
            if DefectName.CRASHES_ON_MALFORMED in self.defects:
                await ws.close(1011, "internal error")
                return False
            # Defect "wrong-error-codes" (breaks ADV-1): GenericError instead of the fitting OCPP-J code.
            if DefectName.WRONG_ERROR_CODES in self.defects:
                frame = CallError(frame.unique_id, "GenericError", frame.description, frame.details)
        text = encode_frame(frame)
        # Variant "string-error-details" (allowed by ADV-1): errorDetails as a string.
        if isinstance(frame, CallError) and self._variant(DefectName.STRING_ERROR_DETAILS):
            # Variant "string-error-details": the firmware's encoder puts a text where OCPP-J wants an object.
            text = encode_json([4, frame.unique_id, frame.code, frame.description, frame.description or "error"])
        frame_log.info("%s > %s", self.id, text)
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one CALL and wait for its answer; one outstanding CALL at a time (OCPP-J §4.1.1)."""
        async with self._call_lock:
            ws = self._ws
            if ws is None or not self._connected.is_set():
                raise NotConnected("not connected")
            problems = schemas().request_problems(action, payload)
            if problems:
                log.log(logging.DEBUG if self.defects else logging.ERROR,
                        "%s: own %s breaks the schema: %s", self.id, action, "; ".join(map(str, problems)))
            uid = str(uuid.uuid4())
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_consume)
            self._pending = (uid, action, future)
            try:
                text = encode_frame(Call(uid, action, payload))
                frame_log.info("%s > %s", self.id, text)
                try:
                    await ws.send(text)
                except ConnectionClosed as exc:
                    raise NotConnected(str(exc)) from None
                self._last_call_at = asyncio.get_running_loop().time()
                async with asyncio.timeout(self.config.call_timeout):
                    return await future
            finally:
                self._pending = None

    # ============================================================================================
    # outgoing messages
    # ============================================================================================

    def _enqueue(self, action: str, payload: dict[str, Any], *, priority: int = 1, triggered: bool = False,
                 keep_offline: bool = False, want_result: bool = False,
                 on_result: Callable[[dict[str, Any]], None] | None = None) -> asyncio.Future[dict[str, Any]] | None:
        future = asyncio.get_running_loop().create_future() if want_result else None
        if future is not None:
            future.add_done_callback(_consume)
        self._outbox.append(_Outgoing((priority, next(self._seq)), action, payload, future, triggered, keep_offline,
                                      on_result))
        self._wake.set()
        self._bump()
        return future

    def _enqueue_status(self, change: StatusChange, *, priority: int = 1, triggered: bool = False) -> None:
        payload: dict[str, Any] = {
            "connectorId": change.connector_id,
            "errorCode": change.error_code,
            "status": change.status,
            "timestamp": self._timestamp(),
        }
        if change.info:
            payload["info"] = change.info
        self._enqueue("StatusNotification", payload, priority=priority, triggered=triggered, keep_offline=True)

    def _enqueue_tx(self, action: str, payload: dict[str, Any], tx: TxRef | None) -> None:
        offline = not self._connected.is_set()
        # Firmware bugs "no-offline-queue" / "loses-offline-stop": messages produced offline are not stored.
        if offline and (DefectName.NO_OFFLINE_QUEUE in self.defects
                        or (action == "StopTransaction" and DefectName.LOSES_OFFLINE_STOP in self.defects)):
            log.warning("%s: offline, %s not queued", self.id, action)
            return
        self.tx_queue.push(action, payload, tx, seq=next(self._seq))
        # Defect "resends-after-stop" (breaks NF-2): the last MeterValues sent again after the offline StopTransaction.
        if offline and action == "StopTransaction" and tx is not None and DefectName.RESENDS_AFTER_STOP in self.defects:
            self._resend_after_stop.add(id(tx))
        self._wake.set()
        self._bump()

    def _next_message(self) -> tuple[_Outgoing | None, QueuedMessage | None, float | None]:
        """What to send next: an outbox item or the queue's head; else when to look again."""
        accepted = self._accepted.is_set()
        pending = self.registration == "Pending"
        best: _Outgoing | None = None
        for item in self._outbox:
            if accepted or (pending and item.triggered):
                if best is None or item.key < best.key:
                    best = item
        head = self.tx_queue.head() if accepted else None
        retry_in: float | None = None
        if head is not None:
            wait = max(head.not_before, self._flush_at) - time.monotonic()
            if wait > 0:
                retry_in, head = wait, None
            elif head.resolved() is None:
                head = None  # its StartTransaction has not been answered: impossible in FIFO order, but be safe
        if head is not None and (best is None or (1, head.seq) < best.key):
            return None, head, None
        return best, None, retry_in

    async def _sender(self) -> None:
        while True:
            await self._connected.wait()
            self._wake.clear()
            item, queued, retry_in = self._next_message()
            if item is None and queued is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(retry_in):
                        await self._wake.wait()
                continue
            if queued is not None:
                lost = await self._send_queued(queued)
            else:
                assert item is not None  # _next_message gives an item, a queued message, or neither (handled above)
                lost = await self._send_outgoing(item)
            self._bump()
            # Firmware bug "falls-silent": once the status report after an Accepted boot is answered, the OCPP task
            # deadlocks: nothing is sent or handled any more, the connection stays open, until a power cycle.
            if (DefectName.FALLS_SILENT in self.defects and item is not None and item.action == "StatusNotification"
                    and not lost and self._accepted.is_set()
                    and not any(o.action == "StatusNotification" for o in self._outbox)):
                self._hung = True
                log.warning("%s: the OCPP task is deadlocked: silent from now on (connection kept open)", self.id)
                await asyncio.Event().wait()
            if lost:
                await self._disconnected.wait()

    async def _send_outgoing(self, item: _Outgoing) -> bool:
        payload = item.payload
        try:
            response = await self._call(item.action, payload)
        except NotConnected:
            return True  # the session cleanup keeps or fails it
        except (CallErrorReceived, TimeoutError) as exc:
            log.warning("%s: %s failed: %s", self.id, item.action, exc)
            self._remove(item)
            if item.future is not None and not item.future.done():
                item.future.set_exception(exc)
            return False
        self._remove(item)
        if item.on_result is not None:
            try:
                item.on_result(response)
            except Exception:  # noqa: BLE001
                log.exception("%s: handling the answer to %s", self.id, item.action)
        if item.future is not None and not item.future.done():
            item.future.set_result(response)
        return False

    def _remove(self, item: _Outgoing) -> None:
        with contextlib.suppress(ValueError):
            self._outbox.remove(item)

    async def _send_queued(self, message: QueuedMessage) -> bool:
        payload = message.resolved()
        assert payload is not None
        try:
            response = await self._call(message.action, payload)
        except NotConnected:
            # Firmware bug "loses-in-flight-message": sent, unanswered, and taken off the queue as if delivered.
            if DefectName.LOSES_IN_FLIGHT_MESSAGE in self.defects:
                self.tx_queue.discard(message, "in flight when the connection dropped")
            else:
                self.tx_queue.requeue(message)
            return True
        except (CallErrorReceived, TimeoutError) as exc:
            attempts = self.configuration.int("TransactionMessageAttempts")
            interval = self.configuration.int("TransactionMessageRetryInterval")
            gave_up = self.tx_queue.failed(message, max_attempts=attempts, retry_interval=interval, now=time.monotonic())
            log.warning("%s: %s failed (%s)%s", self.id, message.action, exc, "; given up" if gave_up else "; will retry")
            return False
        self.tx_queue.ack(message, response)
        if message.action == "StartTransaction" and message.tx is not None:
            self._on_start_answer(message.tx, response)
        if message.action == "StopTransaction" and message.tx is not None and id(message.tx) in self._resend_after_stop:
            # Firmware bug "resends-after-stop": the transaction's last MeterValues goes out again after its stop.
            self._resend_after_stop.discard(id(message.tx))
            last = next((m for m in reversed(self.tx_queue.delivered)
                         if m.action == "MeterValues" and m.tx is message.tx), None)
            if last is not None:
                tx, again = message.tx, dict(last.payload)
                def resend() -> None:
                    self.tx_queue.push("MeterValues", again, tx, seq=next(self._seq))
                    self._wake.set()

                asyncio.get_running_loop().call_later(self.config.late_defect_delay, resend)
        return False

    def _bump(self) -> None:
        """Wake everything waiting for progress (queue drained, status changed, connection lost)."""
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def _wait_progress(self) -> None:
        await self._progress.wait()
