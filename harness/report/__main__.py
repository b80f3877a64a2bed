"""``python -m harness.report verify FILE...`` and ``python -m harness.report render JSON [-o HTML]``.

verify: exit 0 when every file's digest matches its content (for an HTML file, also that the
visible page matches its embedded data), 1 when any does not (or cannot be read).
render: re-render the HTML page from a report JSON (after checking its digest).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .render import HTML_NAME, check, load_report, render_html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_verify = sub.add_parser("verify", help="check reports against their SHA-256 digest")
    p_verify.add_argument("files", nargs="+", type=Path)
    p_render = sub.add_parser("render", help="render certification.html from certification.json")
    p_render.add_argument("json_file", type=Path)
    p_render.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "verify":
        ok_all = True
        for path in args.files:
            ok, findings = check(path)
            ok_all &= ok
            stream = sys.stdout if ok else sys.stderr
            for line in findings:
                print(("OK  " if ok else "BAD ") + line, file=stream)
        return 0 if ok_all else 1

    ok, findings = check(args.json_file)
    if not ok:
        print("\n".join(findings), file=sys.stderr)
        return 1
    out = args.output or args.json_file.with_name(HTML_NAME)
    out.write_text(render_html(load_report(args.json_file)), encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
