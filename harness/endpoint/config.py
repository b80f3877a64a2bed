"""The endpoint's settings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.platform import PlatformSettings
from harness.session import SessionSettings
from harness.timing import Timing

OCPP_SUBPROTOCOL = "ocpp1.6"
MAX_FRAME = 1024 * 1024  # OCPP 1.6 frames are small; a 16 MiB frame is an attack or a bug


@dataclass
class EndpointConfig:
    host: str = "127.0.0.1"
    port: int = 0
    certs_dir: Path = Path("certs")
    extra_hosts: tuple[str, ...] = ()
    security_profile: int = 2
    base_path: str = "/ocpp"
    timing: Timing = field(default_factory=Timing)  # the run's timeout factor (harness/timing.py)
    handshake_timeout: float = 10.0  # TLS + HTTP upgrade, before the timeout factor
    ping_interval: float | None = None  # chargers ping; a fake platform need not
    max_frame: int = MAX_FRAME
    platform: PlatformSettings = field(default_factory=PlatformSettings)
    session: SessionSettings = field(default_factory=SessionSettings)

    def __post_init__(self) -> None:
        # One timing per run: the sessions wait by the endpoint's (it is given once, here).
        if self.session.timing is not self.timing:
            self.session = replace(self.session, timing=self.timing)
