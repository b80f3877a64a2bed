"""Text a charger controls, made safe for a person's terminal.

An identity, a vendor field, an errorDetails or a whole frame can carry terminal control sequences
(ESC [ 2 J clears the screen; OSC 8 forges a link; C1 CSI 0x9B works on some terminals without ESC).
Every human-facing line that quotes the charger goes through `printable`: C0 and C1 control characters and
DEL become visible escapes (``\\x1b``); newline and tab stay unless asked. JSON and the HTML report escape
their own way; this is for terminals and plain-text messages.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, and the C1 range; bidi overrides too (they reorder what a person reads).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_AND_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with every control character shown as an escape; `one_line` escapes newlines and tabs too."""
    return (_CONTROLS_AND_BREAKS if one_line else _CONTROLS).sub(_escape, text)
