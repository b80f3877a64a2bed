"""Every frame between the harness and a charger, in order, with wall-clock and monotonic times.

A test's evidence is its slice of the trace (entries with seq >= the test's start mark).
Secrets are redacted when an entry is recorded, so no later reader can leak them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.printable import printable

RX = "charger→csms"
TX = "csms→charger"
EVENT = "event"

REDACTED = "«redacted»"
# What the trace keeps of one frame: a prefix, its size and its SHA-256 beyond this (a 1 MiB frame must not make
# the trace, or the report, 1 MiB; 20,000 entries stay within 20,000 x 8 KiB).
MAX_TEXT = 8 * 1024


class Redactor:
    """Hides AuthorizationKeys: the configured ones, and any set by ChangeConfiguration."""

    _AUTH_KEY_VALUE = re.compile(r'("key"\s*:\s*"AuthorizationKey"\s*,\s*"value"\s*:\s*)"(?:[^"\\]|\\.)*"')
    _AUTH_HEADER = re.compile(r"(?i)(authorization\s*[:=]\s*)(\S+\s+)?[^\s,'\"}]+")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    @property
    def secrets(self) -> list[str]:
        return sorted(self._secrets)

    def __call__(self, text: str) -> str:
        text = self._AUTH_KEY_VALUE.sub(lambda m: m.group(1) + json.dumps(REDACTED, ensure_ascii=False), text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def header(self, name: str, value: str) -> str:
        if name.lower() in ("authorization", "proxy-authorization"):
            scheme = value.split(" ", 1)[0] if " " in value else ""
            return f"{scheme} {REDACTED}".strip()
        return self(value)


@dataclass(frozen=True)
class TraceEntry:
    seq: int
    direction: str  # RX, TX or EVENT
    wall: dt.datetime
    mono: float
    text: str
    note: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "direction": self.direction,
            "time": self.wall.isoformat(timespec="milliseconds"),
            "mono": round(self.mono, 6),
            "text": self.text,
            "note": self.note,
        }

    def line(self) -> str:
        arrow = {RX: "→", TX: "←", EVENT: "·"}[self.direction]
        note = f"   [{self.note}]" if self.note else ""
        text = self.text if len(self.text) <= 300 else self.text[:300] + f"… ({len(self.text)} chars)"
        return printable(f"{self.wall.strftime('%H:%M:%S.%f')[:-3]} {arrow} {text}{note}", one_line=True)


class Trace:
    """Bounded, ordered record of one charger's frames (a flood cannot exhaust memory)."""

    def __init__(self, redactor: Redactor, capacity: int = 20_000) -> None:
        self._entries: deque[TraceEntry] = deque(maxlen=capacity)
        self._seq = 0
        self.redact = redactor
        # Called with every entry as it is recorded (already redacted), e.g. to print frames live.
        self.listener: Callable[[TraceEntry], None] | None = None

    @property
    def next_seq(self) -> int:
        return self._seq + 1

    def record(self, direction: str, text: str | bytes, note: str | None = None) -> TraceEntry:
        if isinstance(text, (bytes, bytearray)):
            shown = f"<binary frame, {len(text)} bytes: {bytes(text[:64])!r}>"
        else:
            shown = text
        if len(shown) > MAX_TEXT:
            raw = text if isinstance(text, (bytes, bytearray)) else text.encode("utf-8", "surrogatepass")
            digest = hashlib.sha256(raw).hexdigest()
            shown = shown[:MAX_TEXT] + f"… [truncated: {len(text)} characters in all, sha256 {digest}]"
        self._seq += 1
        entry = TraceEntry(
            self._seq, direction, dt.datetime.now(dt.timezone.utc), time.monotonic(), self.redact(shown), note
        )
        self._entries.append(entry)
        if self.listener is not None:
            self.listener(entry)
        return entry

    def event(self, text: str) -> TraceEntry:
        return self.record(EVENT, text)

    def since(self, seq: int) -> list[TraceEntry]:
        return [e for e in self._entries if e.seq >= seq]

    def tail(self, count: int, since: int = 0) -> list[TraceEntry]:
        entries = self.since(since)
        return entries[-count:]

    def __len__(self) -> int:
        return len(self._entries)


def format_frames(entries: list[TraceEntry], limit: int = 25) -> str:
    if not entries:
        return "  (no frames)"
    shown = entries[-limit:]
    lines = [f"  {e.line()}" for e in shown]
    if len(entries) > limit:
        lines.insert(0, f"  … {len(entries) - limit} earlier frames")
    return "\n".join(lines)
