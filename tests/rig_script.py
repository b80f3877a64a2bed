#!/usr/bin/env python3
"""A small command rig for the harness's tests: one physical act per run, through the reference
charger's HTTP control API (docs/reference/charger-control-api.md), with urllib only.

    rig_script.py --url http://127.0.0.1:8701 plugin 1
    rig_script.py --url http://127.0.0.1:8701 authorize TAG-1 1
    rig_script.py --url http://127.0.0.1:8701 ev 1 true        # suspended
    rig_script.py --url http://127.0.0.1:8701 state 1 true     # faulted
    rig_script.py --url http://127.0.0.1:8701 network false    # online
    rig_script.py --url http://127.0.0.1:8701 reboot

The URL may also come from RIG_CONTROL_URL. Exit status 0 when the rig answered 200; otherwise
1, with the status and the body on stderr (the harness shows a failed command's output).
A charger profile for `--charger command` uses it like this:

    [rig.command]
    plugin = "python tests/rig_script.py --url http://127.0.0.1:8701 plugin {connector}"
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rig_script.py", description="one act on the reference charger's rig")
    parser.add_argument("--url", default=os.environ.get("RIG_CONTROL_URL"), help="the control API's base URL")
    acts = parser.add_subparsers(dest="act", required=True)
    for name in ("plugin", "plugout"):
        acts.add_parser(name).add_argument("connector", type=int)
    a = acts.add_parser("authorize")
    a.add_argument("id_tag")
    a.add_argument("connector", type=int)
    for name, flag in (("ev", "suspended"), ("state", "faulted")):
        p = acts.add_parser(name)
        p.add_argument("connector", type=int)
        p.add_argument(flag, choices=("true", "false"))
    acts.add_parser("network").add_argument("online", choices=("true", "false"))
    acts.add_parser("reboot")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give --url or set RIG_CONTROL_URL")

    query: dict[str, str] = {}
    if args.act in ("plugin", "plugout", "ev", "state"):
        query["connector"] = str(args.connector)
    if args.act == "authorize":
        query = {"id": args.id_tag, "connector": str(args.connector)}
    if args.act == "ev":
        query["suspended"] = args.suspended
    if args.act == "state":
        query["faulted"] = args.faulted
    if args.act == "network":
        query["online"] = args.online
    url = f"{args.url.rstrip('/')}/{args.act}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read().decode("utf-8", "replace")
            print(f"POST {url}: {answer.status} {body.strip()}")
            return 0
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        print(f"POST {url}: HTTP {exc.code}: {body.strip()}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"POST {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
