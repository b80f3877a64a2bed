"""Who the charger says it is: HTTP Basic credentials of the upgrade request (security profile 2, AUTH-1), and
the subject of its client certificate (profile 3, AUTH-2). Pure functions; the endpoint decides and records.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
from typing import Any


class BasicAuth(enum.StrEnum):
    """What the HTTP Basic credentials of one upgrade request were (security profile 2; AUTH-1)."""

    KEY_AS_TEXT = "key-as-text"  # user = the identity, password = the AuthorizationKey as configured (hex text)
    KEY_AS_BYTES = "key-as-bytes"  # user = the identity, password = the key's hex digits decoded to bytes
    NO_HEADER = "no-header"
    NOT_BASIC = "not-basic"  # another scheme (Bearer, Digest, ...)
    MALFORMED = "malformed"  # not base64, or no ':' between user and password
    WRONG_USER = "wrong-user"
    WRONG_PASSWORD = "wrong-password"

    @property
    def accepted(self) -> bool:
        return self in (BasicAuth.KEY_AS_TEXT, BasicAuth.KEY_AS_BYTES)


def _check_basic(header: str | None, charger_id: str, key: str | None) -> tuple[BasicAuth, str | None]:
    """Judge an Authorization header (security whitepaper, profile 2): what it was, and why it is refused (or None)."""
    if header is None:
        return BasicAuth.NO_HEADER, "security profile 2: no Authorization header (HTTP Basic auth required)"
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return BasicAuth.NOT_BASIC, f"security profile 2: Authorization scheme {scheme!r}, expected Basic"
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return BasicAuth.MALFORMED, "security profile 2: the Basic credentials are not valid base64"
    user, sep, password = decoded.partition(b":")
    if not sep:
        return BasicAuth.MALFORMED, "security profile 2: the Basic credentials have no ':' between user and password"
    if user.decode("utf-8", "replace") != charger_id:
        return (BasicAuth.WRONG_USER,
                f"security profile 2: Basic auth user {user.decode('utf-8', 'replace')!r} is not the charge point id")
    form = _password_form(password, key)
    if form is None:
        return BasicAuth.WRONG_PASSWORD, "security profile 2: wrong password (it is not the AuthorizationKey)"
    return form, None


def _password_form(password: bytes, key: str | None) -> BasicAuth | None:
    """The password on the wire may be the configured key as text or its hex-decoded bytes (sources disagree,
    ocpp16-notes): accept both and say which; None when it is neither."""
    if key is None:
        return None
    if password == key.encode():
        return BasicAuth.KEY_AS_TEXT
    with contextlib.suppress(ValueError):
        if password == bytes.fromhex(key):
            return BasicAuth.KEY_AS_BYTES
    return None


def _subject(cert: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn]
    return ", ".join(parts)


def _common_name(subject: str) -> str | None:
    for part in subject.split(", "):
        if part.startswith("commonName="):
            return part[len("commonName=") :]
    return None
