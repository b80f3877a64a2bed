"""Secrets out of the report: every string and frame passes a :class:`Redactor` before it is written."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "«redacted»"

_SECRET_KEYS = {"authorization", "proxy-authorization", "authorizationkey", "password", "passwd"}
_HEADER_RE = re.compile(
    r"""(?ix)
    (\b(?:proxy-)?authorization\b["']?\s*[:=]\s*["']?)   # Authorization: / "Authorization": "
    ([^"'\r\n]*)                                           # the value, to the end of the line/quote
    """
)
_HEADER_TUPLE_RE = re.compile(r"""(?i)(['"](?:proxy-)?authorization['"]\s*,\s*b?['"])([^'"]*)""")
_KEY_PROSE_RE = re.compile(r"""(?i)(\bauthorizationkey\b["']?\s*[:=]\s*["']?)([^"'\s,;}\]]+)""")


class Redactor:
    """Removes secrets from strings and nested structures.

    Redacts every variant of each secret (as given, hex-encoded, hex-decoded, and the base64 of
    ``<charger id>:<secret>`` that HTTP Basic sends), the value of any ``Authorization`` header,
    and the value of the ``AuthorizationKey`` configuration key (ChangeConfiguration,
    GetConfiguration) in frames.
    """

    def __init__(self, secrets: Iterable[str] = (), charger_id: str | None = None) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not isinstance(secret, str) or not secret:
                continue
            forms = {secret, secret.encode().hex(), secret.encode().hex().upper()}
            if len(secret) % 2 == 0 and re.fullmatch(r"[0-9a-fA-F]+", secret):
                try:
                    decoded = binascii.unhexlify(secret).decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    decoded = ""
                if decoded and decoded.isprintable():
                    forms.add(decoded)
            if charger_id:
                for form in list(forms):
                    forms.add(base64.b64encode(f"{charger_id}:{form}".encode()).decode())
            variants.update(f for f in forms if f)
        self.variants = sorted(variants, key=len, reverse=True)
        self._re = re.compile("|".join(re.escape(v) for v in self.variants)) if self.variants else None

    def text(self, s: str) -> str:
        if self._re is not None:
            s = self._re.sub(REDACTED, s)
        if "uthorization" in s or "UTHORIZATION" in s:
            s = _HEADER_RE.sub(lambda m: m.group(1) + (REDACTED if m.group(2).strip() else m.group(2)), s)
            s = _HEADER_TUPLE_RE.sub(lambda m: m.group(1) + REDACTED, s)
            s = _KEY_PROSE_RE.sub(lambda m: m.group(1) + REDACTED, s)
        return s

    def tree(self, value: Any) -> Any:
        """A redacted copy of a JSON-like structure (keys and values)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            is_auth_key = isinstance(value.get("key"), str) and value["key"].lower() == "authorizationkey"
            for k, v in value.items():
                key = self.text(str(k))
                if isinstance(v, str) and v and (
                    str(k).lower() in _SECRET_KEYS or (is_auth_key and str(k).lower() == "value")
                ):
                    out[key] = REDACTED
                else:
                    out[key] = self.tree(v)
            return out
        return value

    def frame_text(self, text: str) -> str:
        """Redact an OCPP-J frame, also inside JSON string escapes (\\u0041 would hide a secret)."""
        text = self.text(text)
        try:
            obj = json.loads(text)
        except ValueError:
            return text
        red = self.tree(obj)
        if red != obj:
            text = json.dumps(red, ensure_ascii=False, separators=(",", ":"))
        return text


def redact_report(report: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """A redacted copy of the whole report dictionary, but for the frames: they were redacted when they were
    normalised (frame by frame, also inside JSON escapes), and they are the bulk."""

    def strip_frames(tests: list[dict[str, Any]]) -> list[list[Any]]:
        saved = []
        for t in tests:
            saved.append(t.get("frames", []))
            t["frames"] = []
        return saved

    def restore(tests: list[dict[str, Any]], saved: list[list[Any]]) -> None:
        for t, frames in zip(tests, saved, strict=True):
            t["frames"] = frames

    req_tests = [t for r in report["requirements"] for t in r["tests"]]
    saved_req = strip_frames(req_tests)
    saved_adv = strip_frames(report["advisory"])
    saved_run = strip_frames(report["run_frames"])
    red: dict[str, Any] = redactor.tree(report)
    restore([t for r in red["requirements"] for t in r["tests"]], saved_req)
    restore(red["advisory"], saved_adv)
    restore(red["run_frames"], saved_run)
    restore(req_tests, saved_req)
    restore(report["advisory"], saved_adv)
    restore(report["run_frames"], saved_run)
    return red
