"""Run the reference charger against any OCPP 1.6J central system, with its HTTP control API.

    python -m harness.sim --url wss://HOST:PORT/ocpp --id CP1 --ca certs/ca.pem --password KEY \\
        --control-port 8701 [--connectors 2] [--defect NAME ...] \\
        [--security-profile 3 --client-cert C --client-key K]

Runs until interrupted, logging every frame (the AuthorizationKey redacted). The control API
(docs/reference/charger-control-api.md) plugs EVs in, presents cards, raises faults, cuts the network:

    curl -X POST 'http://127.0.0.1:8701/plugin?connector=1'
    curl -X POST 'http://127.0.0.1:8701/authorize?id=TAG1&connector=1'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from harness.sim.charger import ReferenceCharger, SimConfig
from harness.sim.control_server import ControlServer
from harness.sim.defects import DEFECTS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.sim", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="central system URL without the charge point id, e.g. wss://127.0.0.1:8443/ocpp")
    p.add_argument("--id", dest="charge_point_id", help="charge point identity (appended to the URL, Basic auth user)")
    p.add_argument("--ca", help="CA certificate (PEM) the server certificate must chain to; default: system store")
    p.add_argument("--password", help="AuthorizationKey: the Basic auth password (security profile 2)")
    p.add_argument("--security-profile", type=int, choices=(1, 2, 3), default=2)
    p.add_argument("--client-cert", help="client certificate (PEM), security profile 3")
    p.add_argument("--client-key", help="client certificate's private key (PEM), security profile 3")
    p.add_argument("--control-host", default="127.0.0.1", help="interface of the control API (default 127.0.0.1)")
    p.add_argument("--control-port", type=int, default=8701, help="port of the control API (0 = any, -1 = none)")
    p.add_argument("--connectors", type=int, default=1)
    p.add_argument("--phases", type=int, choices=(1, 2, 3), default=3)
    p.add_argument("--max-current", type=float, default=32.0, help="A per phase (default 32)")
    p.add_argument("--defect", action="append", default=[], metavar="NAME",
                   help="inject a defect or conformant variant (repeatable; --list-defects)")
    p.add_argument("--list-defects", action="store_true", help="print the defect catalogue and exit")
    p.add_argument("--heartbeat-interval", type=int, default=300, help="HeartbeatInterval before boot sets it")
    p.add_argument("--sample-interval", type=int, default=60, help="initial MeterValueSampleInterval")
    p.add_argument("--quiet", action="store_true", help="do not log frames")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _list_defects() -> None:
    width = max(map(len, DEFECTS))
    for kind, conformant in (("defects (a correct harness must fail)", False), ("conformant variants (must pass)", True)):
        print(f"{kind}:")
        for d in DEFECTS.values():
            if d.conformant == conformant:
                print(f"  {d.name:<{width}}  {d.requirement_id:<6}  {d.description}")


async def _run(args: argparse.Namespace) -> int:
    client_cert = (args.client_cert, args.client_key) if args.client_cert else None
    config = SimConfig(
        url=args.url,
        charge_point_id=args.charge_point_id,
        authorization_key=args.password,
        ca_file=args.ca,
        client_cert=client_cert,
        security_profile=args.security_profile,
        connectors=args.connectors,
        phases=args.phases,
        max_current=args.max_current,
        defects=frozenset(args.defect),
        heartbeat_interval=args.heartbeat_interval,
        meter_value_sample_interval=args.sample_interval,
    )
    charger = ReferenceCharger(config)
    control = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await charger.start()
    try:
        if args.control_port >= 0:
            control = await ControlServer(charger, args.control_host, args.control_port).start()
        print(f"reference charger {config.charge_point_id!r} -> {config.url.rstrip('/')}/{config.charge_point_id}",
              flush=True)
        if control is not None:
            print(f"control API: {control.url}  (POST /plugin /plugout /authorize /ev /state /reboot /network)",
                  flush=True)
        if config.defects:
            print(f"defects: {', '.join(sorted(config.defects))}", flush=True)
        await stop.wait()
    finally:
        if control is not None:
            await control.stop()
        await charger.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list_defects:
        _list_defects()
        return 0
    missing = [flag for flag, value in (("--url", args.url), ("--id", args.charge_point_id)) if not value]
    if missing:
        _parser().error(f"{' and '.join(missing)} required")
    if not args.url.startswith(("wss://", "ws://")):
        _parser().error("--url must start with wss:// (or ws:// for security profile 1)")
    if args.security_profile == 3 and not (args.client_cert and args.client_key):
        _parser().error("--security-profile 3 needs --client-cert and --client-key")
    if args.security_profile in (1, 2) and not args.password:
        _parser().error(f"--security-profile {args.security_profile} needs --password (the AuthorizationKey)")
    unknown = [d for d in args.defect if d not in DEFECTS]
    if unknown:
        _parser().error(f"unknown defect(s) {', '.join(unknown)}; see --list-defects")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    if args.quiet:
        logging.getLogger("harness.sim.frames").setLevel(logging.WARNING)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
