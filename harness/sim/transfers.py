"""The reference charger's file transfers: UpdateFirmware (§5.19) and GetDiagnostics (§5.9) over HTTP(S)
and FTP, with their status notifications.

A mixin of ReferenceCharger (harness/sim/charger.py): its methods use the charger's state on `self`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import ssl
import urllib.parse
from collections.abc import Callable
from typing import Any

import aioftp
import aiohttp

from harness.sim.common import MAX_DOWNLOAD, ChargerRoom, _iso, _parse_time, _read_bounded, _new_version
from harness.sim.defects import DefectName

log = logging.getLogger("harness.sim.charger")


class TransfersMixin(ChargerRoom):
    # --- Firmware Management (§5.19, §5.9) --------------------------------------------------------

    async def _on_UpdateFirmware(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        # Firmware bug "firmware-update-silent": the request is acknowledged and forgotten.
        if DefectName.FIRMWARE_UPDATE_SILENT in self.defects:
            return {}, None
        location = p["location"]
        retrieve = _parse_time(p["retrieveDate"])
        attempts = max(1, int(p.get("retries") or 1))
        retry_interval = int(p.get("retryInterval") or 0)
        return {}, lambda: self._spawn(self._update_firmware(location, retrieve, attempts, retry_interval), "firmware")

    def _notify(self, action: str, status: str, *, wait: bool = False) -> asyncio.Future[dict[str, Any]] | None:
        if action == "FirmwareStatusNotification":
            self.firmware_status = status
        else:
            self.diagnostics_status = status
        return self._enqueue(action, {"status": status}, keep_offline=True, want_result=wait)

    async def _update_firmware(self, location: str, retrieve: dt.datetime, attempts: int, retry_interval: int) -> None:
        delay = (retrieve - self._clock()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)  # the retrieveDate is a real protocol time
        self._notify("FirmwareStatusNotification", "Downloading")
        data: bytes | None = None
        for attempt in range(attempts):
            try:
                data = await self._download(location)
                break
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: firmware download %d/%d from %s failed: %s", self.id, attempt + 1, attempts,
                            location, exc)
                if attempt + 1 < attempts:
                    await asyncio.sleep(retry_interval)
        if data is None:
            self._notify("FirmwareStatusNotification", "DownloadFailed")
            self.firmware_status = "Idle"
            if DefectName.INSTALLS_AFTER_FAILED_DOWNLOAD in self.defects:  # firmware bug: installs what it has anyway
                await asyncio.sleep(self.config.late_defect_delay)
                self._notify("FirmwareStatusNotification", "Installing")
                self._notify("FirmwareStatusNotification", "Installed")
                self.firmware_status = "Idle"
            return
        self.downloaded_firmware = data
        self._notify("FirmwareStatusNotification", "Downloaded")
        # A charger installs only when no transaction runs.
        while self.model.transactions():
            await self._wait_progress()
        self._notify("FirmwareStatusNotification", "Installing")
        await asyncio.sleep(self.config.install_time)
        installed = self._notify("FirmwareStatusNotification", "Installed", wait=True)
        self.firmware_version = _new_version(self.firmware_version, location)
        if installed is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.config.call_timeout):
                    await installed
        self.firmware_status = "Idle"
        self._spawn_detached(self._reboot("Reboot"))

    def _tls_for_transfers(self) -> ssl.SSLContext:
        from harness.tls import client_context

        ca_file, partial_chain = self._trust_store()
        return client_context(ca_file, partial_chain=partial_chain)

    def _http_client(self, scheme: str) -> aiohttp.ClientSession:
        """An HTTP(S) client for a transfer: the charger's trust store for HTTPS, no proxy, its User-Agent."""
        timeout = self.config.transfer_timeout
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._tls_for_transfers() if scheme == "https" else True),
            timeout=aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout),
            headers={"User-Agent": f"{self.config.vendor}-{self.config.model}"},
            raise_for_status=True,
        )

    def _ftp_client(self, parts: urllib.parse.SplitResult) -> contextlib.AbstractAsyncContextManager[aioftp.Client]:
        """An FTP session (aioftp) logged in with the URL's user (anonymous if none), as async context."""
        timeout = self.config.transfer_timeout
        return aioftp.Client.context(
            parts.hostname or "", parts.port or 21, urllib.parse.unquote(parts.username or aioftp.DEFAULT_USER),
            urllib.parse.unquote(parts.password if parts.password is not None else aioftp.DEFAULT_PASSWORD),
            socket_timeout=timeout, connection_timeout=timeout,
        )

    async def _download(self, location: str) -> bytes:
        parts = urllib.parse.urlsplit(location)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ftp"):
            raise ValueError(f"unsupported scheme {scheme!r}")
        if scheme == "ftp":
            async with self._ftp_client(parts) as ftp, ftp.download_stream(urllib.parse.unquote(parts.path)) as stream:
                data = await _read_bounded(stream.iter_by_block(), MAX_DOWNLOAD)
        else:
            async with self._http_client(scheme) as client, client.get(location) as response:
                data = await _read_bounded(response.content.iter_chunked(65536), MAX_DOWNLOAD)
        if not data:
            raise ValueError("empty firmware image")
        return data

    async def _on_GetDiagnostics(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        location = p["location"]
        attempts = max(1, int(p.get("retries") or 1))
        retry_interval = int(p.get("retryInterval") or 0)
        stamp = self._clock().strftime("%Y%m%dT%H%M%SZ")
        name = f"diagnostics-{re.sub(r'[^A-Za-z0-9._-]', '_', self.id)}-{stamp}.txt"
        return {"fileName": name}, lambda: self._spawn(self._upload_diagnostics(location, name, attempts, retry_interval),
                                                       "diagnostics")

    async def _upload_diagnostics(self, location: str, name: str, attempts: int, retry_interval: int) -> None:
        self._notify("DiagnosticsStatusNotification", "Uploading")
        # Firmware bug "no-diagnostics-upload": reports success without uploading anything.
        if DefectName.NO_DIAGNOSTICS_UPLOAD in self.defects:
            self._notify("DiagnosticsStatusNotification", "Uploaded")
            self.diagnostics_status = "Idle"
            return
        content = self._diagnostics_text().encode()
        ok = False
        for attempt in range(attempts):
            try:
                await self._upload(location, name, content)
                ok = True
                break
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: diagnostics upload %d/%d to %s failed: %s", self.id, attempt + 1, attempts, location, exc)
                if attempt + 1 < attempts:
                    await asyncio.sleep(retry_interval)
        self._notify("DiagnosticsStatusNotification", "Uploaded" if ok else "UploadFailed")
        self.diagnostics_status = "Idle"

    def _diagnostics_text(self) -> str:
        known, _ = self.configuration.get()
        lines = [
            f"charge point {self.id}", f"vendor {self.config.vendor} model {self.config.model}",
            f"firmware {self.firmware_version}", f"boots {self.boot_count}", f"time {_iso(self._clock())}",
        ]
        for cid, c in self.model.connectors.items():
            lines.append(f"connector {cid}: {c.status.status} register {c.register_wh:.1f} Wh")
        lines += [f"{k['key']}={k['value']}" for k in known]
        return "\n".join(lines) + "\n"

    async def _upload(self, location: str, name: str, content: bytes) -> None:
        parts = urllib.parse.urlsplit(location)
        scheme = parts.scheme.lower()
        if scheme == "ftp":
            async with self._ftp_client(parts) as ftp:
                path = urllib.parse.unquote(parts.path)
                if path and path not in ("/", ""):
                    await ftp.change_directory(path)
                async with ftp.upload_stream(name) as stream:
                    await stream.write(content)
            return
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r}")
        target = location if location.endswith("/") else location + "/"
        target += urllib.parse.quote(name)
        async with self._http_client(scheme) as client:
            # First PUT <location>/<fileName>; servers that take uploads by POST get a multipart form.
            try:
                async with client.put(target, data=content, headers={"Content-Type": "text/plain"}):
                    return
            except aiohttp.ClientResponseError as exc:
                if exc.status not in (404, 405, 501):
                    raise
            form = aiohttp.FormData()
            form.add_field("file", content, filename=name, content_type="text/plain")
            async with client.post(location, data=form):
                return
