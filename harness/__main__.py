"""Command line: run the fake endpoint alone, or make bench certificates.

    python -m harness serve --charger-profile charger.toml     # the key from the profile's authorization_key_env
    CHARGER_AUTHORIZATION_KEY=... python -m harness serve --csms-port 8443 --charger-id CP1
    python -m harness certs --host charger-bench.local --ip 192.168.1.20
    python -m harness certs --client-cert CP-BENCH-1     # security profile 3: a client certificate too
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import __version__, tls
from harness import profile as profile_mod
from harness.profile import KEY_ENV
from harness.printable import printable
from harness.endpoint import CONNECTED, ConnectionAttempt, Endpoint, EndpointConfig
from harness.platform import PlatformSettings


def _serve_settings(args: argparse.Namespace) -> None:
    """Fill what the command line left open from the charger profile, then the environment; the command
    line wins, as for `pytest suites/`. The key: profile.authorization_key, the resolver `pytest suites/` uses,
    with KEY_ENV last. ValueError names what is missing. The key never reaches the output."""
    values: dict[str, Any] = {}
    profile: profile_mod.ChargerProfile | None = None
    if args.charger_profile:
        try:
            profile = profile_mod.load(args.charger_profile)
        except pytest.UsageError as exc:
            raise ValueError(str(exc)) from None
        values = profile.values
    if args.charger_id is None:
        args.charger_id = values.get("charger_id")
    if args.charger_id is None:
        raise ValueError("give --charger-id (or [charger] id in --charger-profile)")
    if args.security_profile is None:
        args.security_profile = int(values.get("security_profile", 2))
    if args.csms_host is None:
        args.csms_host = values.get("csms_host", "127.0.0.1")
    if args.csms_port is None:
        port = values.get("csms_port") or 0
        args.csms_port = int(port) if port else 8443
    args.authorization_key, args.key_source = profile_mod.authorization_key(
        args.authorization_key, "--authorization-key on the command line", profile, fallback_env=KEY_ENV
    )
    if args.security_profile == 2 and not args.authorization_key:
        raise ValueError(
            f"security profile 2 needs the charger's AuthorizationKey: export {KEY_ENV} (read -rs {KEY_ENV} && "
            f"export {KEY_ENV}), or name a variable with authorization_key_env in --charger-profile"
        )


def _print(line: str) -> None:
    print(printable(line), flush=True)  # lines quote what chargers sent: never their control sequences


async def serve(args: argparse.Namespace) -> int:
    def on_attempt(attempt: ConnectionAttempt) -> None:
        mark = "OK " if attempt.outcome == CONNECTED else "NO "
        _print(f"{mark} connection {attempt.summary()}")
        if attempt.client_hello and attempt.outcome != CONNECTED:
            _print(f"    client hello: {attempt.client_hello}")

    endpoint = Endpoint(
        EndpointConfig(
            host=args.csms_host,
            port=args.csms_port,
            certs_dir=Path(args.certs_dir),
            extra_hosts=tuple(args.host or ()),
            security_profile=args.security_profile,
            platform=PlatformSettings(heartbeat_interval=args.heartbeat_interval),
        ),
        on_attempt=on_attempt,
    )
    await endpoint.start()
    session = endpoint.register(args.charger_id, args.authorization_key)
    _print(f"ev.energy OCPP 1.6J endpoint (harness {__version__}) listening")
    _print(f"  URL:      {endpoint.charger_url(args.charger_id)}")
    _print(f"  TLS:      TLS 1.2 only, {tls.POLICY_NAME} ({len(tls.POLICY_SUITES)} suites), RSA + ECDSA certificates")
    _print(f"  CA:       {endpoint.certs.ca_pem}  (install it on the charger as trusted root; "
           "the endpoint sends leaf + intermediate)")
    if args.security_profile == 2:
        _print(f"  auth:     security profile 2, Basic auth user {args.charger_id!r}, password = the AuthorizationKey "
               f"from {args.key_source}")
    else:
        _print(f"  auth:     security profile 3, client certificate with CN {args.charger_id!r} from this CA")
    _print("  Ctrl-C to stop.")

    # Every frame, as the trace records it (already redacted).
    session.trace.listener = lambda entry: _print(entry.line())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    _print("stopping")
    await endpoint.stop()
    return 0


def certs(args: argparse.Namespace) -> int:
    hosts = list(args.host or []) + list(args.ip or [])
    store = tls.CertStore(args.certs_dir).ensure(hosts)
    _print(f"certificates in {Path(args.certs_dir).resolve()}")
    _print(f"  install on the charger as its trusted root CA: {store.ca_pem.resolve()}")
    _print(f"  the endpoint sends leaf + intermediate ({store.intermediate_pem.name}), like the platform's load "
           "balancer: the charger must build the chain root -> intermediate -> leaf; do not install the leaf")
    _print(f"  the server certificates cover: {', '.join(store.server_names())}")
    for name in hosts or ["127.0.0.1"]:
        shown = f"[{name}]" if ":" in name else name
        _print(f"  configure the charger's central system URL as: wss://{shown}:<csms-port>/ocpp/<chargePointId>")
    for charger_id in args.client_cert or []:
        # Security profile 3 (AUTH-2): CN = the charge point's identity, O = the CPO, signed by the harness CA.
        cert, key = store.issue_client_cert(charger_id, organization=args.organization)
        _print(f"  client certificate for {charger_id} (security profile 3): {cert.resolve()}")
        _print(f"    its private key (mode 0600, install it on the charger, never share it): {key.resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description="ev.energy OCPP 1.6J conformance harness")
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    s = commands.add_parser("serve", help="run the fake ev.energy endpoint alone, to bring a charger up")
    s.add_argument("--csms-host", default=None, help="interface to listen on (0.0.0.0 for the LAN; default 127.0.0.1)")
    s.add_argument("--csms-port", type=int, default=None, help="port (default: the profile's, else 8443)")
    s.add_argument("--certs-dir", default="certs")
    s.add_argument("--host", action="append", help="extra host name or address for the server certificate")
    s.add_argument("--charger-profile", default=None,
                   help="the charger profile (TOML): identity, security profile, key source, endpoint port")
    s.add_argument("--charger-id", default=None, help="charge point identity (or [charger] id in the profile)")
    s.add_argument("--authorization-key", default=None,
                   help=f"the charger's AuthorizationKey (profile 2); visible to every user in the process list: "
                        f"prefer the environment variable {KEY_ENV} or the profile's authorization_key_env")
    s.add_argument("--security-profile", type=int, choices=(2, 3), default=None)
    s.add_argument("--heartbeat-interval", type=int, default=60)

    c = commands.add_parser("certs", help="create or extend the CA and server certificates for a bench")
    c.add_argument("--certs-dir", default="certs")
    c.add_argument("--host", action="append", help="host name the charger connects to")
    c.add_argument("--ip", action="append", help="IP address the charger connects to")
    c.add_argument("--client-cert", action="append", metavar="CHARGE_POINT_ID",
                   help="also issue a security-profile-3 client certificate for this charge point (CN)")
    c.add_argument("--organization", default="ev.energy bench", help="O of the client certificates (the CPO's name)")

    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            _serve_settings(args)
        except ValueError as exc:
            parser.error(str(exc))
        return asyncio.run(serve(args))
    return certs(args)


if __name__ == "__main__":
    sys.exit(main())
