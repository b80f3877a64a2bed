"""The AWS policy the endpoint speaks, ``ELBSecurityPolicy-TLS-1-2-Ext-2018-06`` (TLS-1), and the names of what
a ClientHello may offer (versions, suites, groups), for reports; the server context without certificates, and
the client context a good charger uses.
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
from typing import Final

# --------------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------------

POLICY_NAME: Final[str] = "ELBSecurityPolicy-TLS-1-2-Ext-2018-06"

# IANA code -> OpenSSL name, in the policy's order (AWS lists them in this order, and an ELB
# prefers them in this order: the server's preference decides the suite).
POLICY_SUITE_CODES: Final[dict[int, str]] = {
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
    0xC023: "ECDHE-ECDSA-AES128-SHA256",
    0xC027: "ECDHE-RSA-AES128-SHA256",
    0xC009: "ECDHE-ECDSA-AES128-SHA",
    0xC013: "ECDHE-RSA-AES128-SHA",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xC030: "ECDHE-RSA-AES256-GCM-SHA384",
    0xC024: "ECDHE-ECDSA-AES256-SHA384",
    0xC028: "ECDHE-RSA-AES256-SHA384",
    0xC014: "ECDHE-RSA-AES256-SHA",
    0xC00A: "ECDHE-ECDSA-AES256-SHA",
    0x009C: "AES128-GCM-SHA256",
    0x003C: "AES128-SHA256",
    0x002F: "AES128-SHA",
    0x009D: "AES256-GCM-SHA384",
    0x003D: "AES256-SHA256",
    0x0035: "AES256-SHA",
}
POLICY_SUITES: Final[tuple[str, ...]] = tuple(POLICY_SUITE_CODES.values())

# The policy's ECDHE groups, in the load balancer's preference order. AWS's TLS library s2n-tls defines
# ELBSecurityPolicy-TLS-1-2-Ext-2018-06 with ecc_preferences s2n_ecc_preferences_20140601 = secp256r1,
# secp384r1 (tls/s2n_security_policies.c, tls/s2n_ecc_preferences.c): no x25519, x448 or P-521. IANA code ->
# OpenSSL curve name (what SSLContext.set_ecdh_curve takes).
POLICY_GROUPS: Final[dict[int, str]] = {0x0017: "prime256v1", 0x0018: "secp384r1"}
_GROUP_NAMES: Final[dict[int, str]] = {
    0x0017: "P-256", 0x0018: "P-384", 0x0019: "P-521", 0x001D: "x25519", 0x001E: "x448",
    0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096", 0x001A: "brainpoolP256r1",
    0x001B: "brainpoolP384r1", 0x001C: "brainpoolP512r1", 0x0015: "secp224r1",
}


def group_name(code: int) -> str:
    """``0x0017`` -> ``"P-256"``; unknown groups keep their hex."""
    if code in _GROUP_NAMES:
        return _GROUP_NAMES[code]
    return f"GREASE (0x{code:04x})" if _is_grease(code) else f"0x{code:04X}"

# RFC 8446 §B.4. The policy has none of them: a TLS 1.3-only charger cannot connect.
TLS13_SUITE_CODES: Final[dict[int, str]] = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
}

# Signalling values that sit in the cipher-suite list but are not suites (RFC 5746, RFC 7507).
_SCSV_CODES: Final[dict[int, str]] = {
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    0x5600: "TLS_FALLBACK_SCSV",
}

# A few suites embedded TLS stacks (mbedTLS, wolfSSL) commonly offer that OpenSSL may not list at
# the default build; names in OpenSSL style so reports read the same throughout.
_OTHER_SUITE_CODES: Final[dict[int, str]] = {
    0xCCA8: "ECDHE-RSA-CHACHA20-POLY1305",
    0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305",
    0xCCAA: "DHE-RSA-CHACHA20-POLY1305",
    0x009E: "DHE-RSA-AES128-GCM-SHA256",
    0x009F: "DHE-RSA-AES256-GCM-SHA384",
    0x0033: "DHE-RSA-AES128-SHA",
    0x0039: "DHE-RSA-AES256-SHA",
    0x0067: "DHE-RSA-AES128-SHA256",
    0x006B: "DHE-RSA-AES256-SHA256",
    0x000A: "DES-CBC3-SHA",
    0xC012: "ECDHE-RSA-DES-CBC3-SHA",
    0x0005: "RC4-SHA",
    0x0004: "RC4-MD5",
    0xC0AC: "ECDHE-ECDSA-AES128-CCM",
    0xC0AE: "ECDHE-ECDSA-AES128-CCM8",
    0xC09C: "AES128-CCM",
    0xC0A0: "AES128-CCM8",
    0x00A8: "PSK-AES128-GCM-SHA256",
    0x00AE: "PSK-AES128-CBC-SHA256",
}

_TLS_VERSION_NAMES: Final[dict[int, str]] = {
    0x0002: "SSL 2.0",
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
_TLS12: Final[int] = 0x0303


def _is_grease(code: int) -> bool:
    # RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA; clients sprinkle them into version and suite lists.
    return (code & 0x0F0F) == 0x0A0A and (code >> 8) == (code & 0xFF)


def tls_version_name(code: int) -> str:
    """``0x0303`` -> ``"TLS 1.2"``; unknown values keep their hex so nothing is hidden."""
    if code in _TLS_VERSION_NAMES:
        return _TLS_VERSION_NAMES[code]
    if _is_grease(code):
        return f"GREASE (0x{code:04x})"
    if 0x7F00 <= code <= 0x7FFF:  # pre-RFC 8446 drafts
        return f"TLS 1.3 draft {code & 0xFF}"
    return f"unknown version (0x{code:04x})"


@functools.cache
def _openssl_suite_names() -> dict[int, str]:
    # Everything this OpenSSL build knows, for naming suites outside the policy in reports.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return {int(c["id"]) & 0xFFFF: str(c["name"]) for c in ctx.get_ciphers()}


def _suite_name(code: int) -> str:
    for table in (POLICY_SUITE_CODES, TLS13_SUITE_CODES, _SCSV_CODES, _OTHER_SUITE_CODES):
        if code in table:
            return table[code]
    return _openssl_suite_names().get(code, f"0x{code:04X}")


def _policy_server_context() -> ssl.SSLContext:
    """The policy without certificates; shared by the good and the deliberately bad servers."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # "TLS 1.2 only (no 1.0, 1.1, 1.3)".
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    # Python's defaults enable only 8 of the 18 (no SHA-1 MACs, no static RSA): name them all.
    # An explicit list keeps its order in OpenSSL, and with server preference that order decides.
    ctx.set_ciphers(":".join(POLICY_SUITES))
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def client_context(ca_file: str | os.PathLike[str] | None, *,
                   client_cert: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
                   check_hostname: bool = True, verify: bool = True,
                   partial_chain: bool = False) -> ssl.SSLContext:
    """What a good charger uses: TLS >= 1.2, chain checked against ``ca_file`` (the system store if
    None) and the host name checked (TLS-3). ``verify=False`` turns both off: only for the reference
    charger's "no server-certificate check" defect. ``client_cert`` = (cert, key) for profile 3.
    ``partial_chain``: any certificate in ``ca_file`` is a trust anchor, not only a self-signed root
    (OpenSSL's X509_V_FLAG_PARTIAL_CHAIN; RFC 5280 §6.1.1 lets a trust anchor be any CA), for a
    charger given the intermediate as its trusted CA.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        if ca_file is not None:
            ctx.load_verify_locations(cafile=ca_file)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        ctx.check_hostname = check_hostname  # CERT_REQUIRED stays: the chain is always checked
        if partial_chain:
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    else:
        ctx.check_hostname = False  # must be off before verify_mode can drop to CERT_NONE
        ctx.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        ctx.load_cert_chain(client_cert[0], client_cert[1])
    return ctx
