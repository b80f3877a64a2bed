"""CORE-1: Heartbeats go on after the charger reconnects without a new BootNotification.

OCPP 1.6 §4.6: once its BootNotification is accepted the charge point sends Heartbeat every
HeartbeatInterval seconds, and MAY skip one when it sent another PDU within the interval. Nothing
in §4.6 ends that on a reconnect: a charger that reconnects without rebooting (no new
BootNotification) keeps its registration and its heartbeat. The platform marks a charger offline
when its heartbeats stop, so a charger that falls silent after a reconnect disappears from the
platform although it is connected. The finding is about the Heartbeat part of the Core profile,
CORE-1, whichever test caused the reconnect.

`ReconnectHeartbeat` is the check for one connection (sans-I/O; ChargerSession drives it and
sets the timer): armed when a charger that has booted before connects again; satisfied by a
Heartbeat; void when a BootNotification comes (the charger rebooted: test_boot judges heartbeats
after a boot) or the connection drops; a finding when the charger stays silent for longer than
the interval plus the tolerance, counted from its last exchange with the platform (any CALL it
sent and our answer, or its answer to our CALL, starts the count afresh; while it waits for our
answer it cannot send, so nothing counts). The rule and its numbers: docs/rules-offline.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PENDING, HEARTBEAT, BOOTED, DISCONNECTED, SILENT = "pending", "heartbeat", "booted", "disconnected", "silent"

#: Seconds a charger that connects again may take to send a BootNotification (if it rebooted) before its
#: silence counts (the plugin's own reconnect handling allows the same); before the timeout factor.
BOOT_GRACE = 10.0


def tolerance(interval: float) -> float:
    """The lateness a Heartbeat is allowed, the same as CORE-1's heartbeat test (suites/test_boot.py)."""
    return max(1.0, 0.25 * interval)


@dataclass
class ReconnectHeartbeat:
    connected_seq: int
    connected_mono: float
    interval: float  # the HeartbeatInterval the charger was given (seconds)
    factor: float = 1.0  # the run's timeout factor
    last_exchange: float = 0.0  # monotonic; 0: nothing since the reconnect
    waiting_for_platform: bool = False
    outcome: str = PENDING
    heartbeat_after: float | None = None  # seconds from the reconnect to the first Heartbeat
    silent_for: float | None = None

    @property
    def allowed(self) -> float:
        """The longest silence allowed, scaled."""
        return (self.interval + tolerance(self.interval)) * self.factor

    @property
    def deadline(self) -> float:
        """Monotonic time at which the silence becomes a finding (inf while the platform owes an answer)."""
        if self.outcome != PENDING or self.waiting_for_platform:
            return math.inf
        if not self.last_exchange:
            return self.connected_mono + max(self.allowed, BOOT_GRACE * self.factor)
        return self.last_exchange + self.allowed

    def charger_call(self, action: str, mono: float) -> None:
        if self.outcome != PENDING:
            return
        if action == "Heartbeat":
            self.outcome, self.heartbeat_after = HEARTBEAT, mono - self.connected_mono
        elif action == "BootNotification":
            self.outcome = BOOTED
        else:
            self.waiting_for_platform = True  # §4.1.1: one CALL at a time: it waits for our answer

    def exchange(self, mono: float, *, platform_answered: bool = True) -> None:
        """The platform answered the charger's CALL, or (platform_answered=False) the charger answered the platform's:
        the silence counts from here; a CALL of the charger the platform still owes an answer keeps it waiting."""
        if platform_answered:
            self.waiting_for_platform = False
        self.last_exchange = mono

    def disconnected(self) -> None:
        if self.outcome == PENDING:
            self.outcome = DISCONNECTED

    def due(self, now: float) -> bool:
        """Whether the silence has just become a finding (then the outcome is SILENT)."""
        if self.outcome != PENDING or now < self.deadline:
            return False
        self.outcome = SILENT
        self.silent_for = now - (self.last_exchange or self.connected_mono)
        return True

    def finding(self) -> str:
        since = "since it reconnected" if not self.last_exchange else "since its last exchange with the platform"
        return (
            f"expected Heartbeats to go on every {self.interval:g} s after the charger reconnected without a new "
            f"BootNotification (OCPP 1.6 §4.6; tolerance {tolerance(self.interval):g} s; docs/rules-offline.md); "
            f"it sent nothing for {self.silent_for or 0:.1f} s {since} and no Heartbeat since the reconnect: the "
            "platform would mark it offline"
        )
