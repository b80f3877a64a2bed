"""The ClientHello a charger sent, parsed from bytes peeked from the socket (sans-I/O): versions, suites, groups
and SNI as raw wire values, and one line for humans on what was offered against the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from harness.tls.policy import (
    _SCSV_CODES,
    _TLS12,
    POLICY_GROUPS,
    POLICY_SUITE_CODES,
    POLICY_SUITES,
    _is_grease,
    _suite_name,
    group_name,
    tls_version_name,
)

# --------------------------------------------------------------------------------------------------
# ClientHello (sans-I/O)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientHello:
    """What a charger offered, as raw wire values (GREASE and SCSVs included)."""

    record_version: int
    legacy_version: int
    supported_versions: tuple[int, ...]  # from extension 43 (supported_versions), else (legacy_version,)
    cipher_suites: tuple[int, ...]
    server_name: str | None
    groups: tuple[int, ...] | None = None  # supported_groups (extension 10); None when it was not sent

    def policy_group(self) -> str | None:
        """The ECDHE curve the platform's load balancer would pick: its first preference the charger offers.
        None when the charger offers neither P-256 nor P-384 (then no ECDHE suite can be agreed). A hello
        without the extension lets the server choose (RFC 8422 §4): the load balancer's first, P-256."""
        if self.groups is None:
            return POLICY_GROUPS[0x0017]
        return next((name for code, name in POLICY_GROUPS.items() if code in self.groups), None)

    def offered_groups(self) -> list[str]:
        return [group_name(g) for g in self.groups or () if not _is_grease(g)]

    def offered_policy_suites(self) -> list[str]:
        """OpenSSL names of the offered suites the policy allows, in the charger's order."""
        return [POLICY_SUITE_CODES[c] for c in self.cipher_suites if c in POLICY_SUITE_CODES]

    def offers_tls12(self) -> bool:
        return _TLS12 in self.supported_versions

    def describe(self) -> str:
        """One line for humans: the versions, and how many policy suites, were offered."""
        versions = [v for v in self.supported_versions if not _is_grease(v)]
        if not self.offers_tls12():
            if len(versions) == 1 and versions[0] == self.legacy_version and versions[0] < _TLS12:
                # No supported_versions extension: legacy_version is only the highest version.
                return f"offered {tls_version_name(versions[0])} at most"
            return f"offered {_join_and([tls_version_name(v) for v in versions]) or 'no version'} only"
        head = f"offered {_join_and([tls_version_name(v) for v in versions])}"
        policy = list(dict.fromkeys(self.offered_policy_suites()))
        if policy:
            return f"{head} with {len(policy)} of {len(POLICY_SUITES)} policy suites ({', '.join(policy)})"
        offered = [_suite_name(c) for c in self.cipher_suites if not _is_grease(c) and c not in _SCSV_CODES]
        return (f"{head} with 0 of {len(POLICY_SUITES)} policy suites "
                f"(offered: {', '.join(offered) or 'nothing'})")


def _join_and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


class _Malformed(Exception):
    """Internal: the bytes are not a complete, well-formed ClientHello."""


class _Reader:
    """Bounds-checked reader: every read past the end raises _Malformed, nothing else."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise _Malformed
        chunk = self._data[self._pos:self._pos + n]
        self._pos += n
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.uint(length_size))

    def at_end(self) -> bool:
        return self._pos >= len(self._data)


_CONTENT_HANDSHAKE: Final[int] = 22
_HANDSHAKE_CLIENT_HELLO: Final[int] = 1
_MAX_RECORD: Final[int] = 2**14 + 2048  # RFC 5246 §6.2.3 ceiling for any record
_MAX_HELLO: Final[int] = 2**17  # far above any real ClientHello; refuses absurd lengths early
_EXT_SERVER_NAME: Final[int] = 0
_EXT_SUPPORTED_VERSIONS: Final[int] = 43
_EXT_SUPPORTED_GROUPS: Final[int] = 10


def parse_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of ``data`` (bytes peeked from a socket).

    Handles a hello split over several handshake records. Returns None for anything that is not a
    complete TLS ClientHello (plain HTTP, SSLv2, garbage, truncated); never raises.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    buf = bytes(data)
    try:
        handshake = bytearray()
        record_version: int | None = None
        pos = 0
        need: int | None = None
        while need is None or len(handshake) < need:
            header = _Reader(buf[pos:pos + 5])
            content_type, version, length = header.uint(1), header.uint(2), header.uint(2)
            if content_type != _CONTENT_HANDSHAKE or version >> 8 != 3 or not 0 < length <= _MAX_RECORD:
                return None
            if record_version is None:
                record_version = version
            handshake += _Reader(buf[pos + 5:pos + 5 + length]).take(length)
            pos += 5 + length
            if need is None and len(handshake) >= 4:
                if handshake[0] != _HANDSHAKE_CLIENT_HELLO:
                    return None
                need = 4 + int.from_bytes(handshake[1:4], "big")
                if need > _MAX_HELLO:
                    return None
        assert record_version is not None and need is not None
        return _parse_hello_body(bytes(handshake[4:need]), record_version)
    except _Malformed:
        return None


def _parse_hello_body(body: bytes, record_version: int) -> ClientHello:
    r = _Reader(body)
    legacy_version = r.uint(2)
    r.take(32)  # random
    if len(r.vector(1)) > 32:  # legacy_session_id
        raise _Malformed
    suites = r.vector(2)
    if not suites or len(suites) % 2:
        raise _Malformed
    if not r.vector(1):  # compression methods: at least "null"
        raise _Malformed
    server_name: str | None = None
    versions: tuple[int, ...] | None = None
    groups: tuple[int, ...] | None = None
    if not r.at_end():  # extensions are optional before TLS 1.3
        exts = _Reader(r.vector(2))
        while not exts.at_end():
            ext_type, ext_data = exts.uint(2), exts.vector(2)
            if ext_type == _EXT_SERVER_NAME and server_name is None:
                names = _Reader(_Reader(ext_data).vector(2))
                while not names.at_end():
                    name_type, name = names.uint(1), names.vector(2)
                    if name_type == 0:  # host_name
                        server_name = name.decode("ascii", errors="replace")
                        break
            elif ext_type == _EXT_SUPPORTED_GROUPS and groups is None:
                raw = _Reader(ext_data).vector(2)
                if len(raw) % 2:
                    raise _Malformed
                groups = tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2))
            elif ext_type == _EXT_SUPPORTED_VERSIONS and versions is None:
                raw = _Reader(ext_data).vector(1)
                if not raw or len(raw) % 2:
                    raise _Malformed
                versions = tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2))
    return ClientHello(
        record_version=record_version,
        legacy_version=legacy_version,
        supported_versions=versions if versions is not None else (legacy_version,),
        cipher_suites=tuple(int.from_bytes(suites[i:i + 2], "big") for i in range(0, len(suites), 2)),
        server_name=server_name,
        groups=groups,
    )
