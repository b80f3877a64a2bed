"""Earlier runs' reports: <report dir>/history/<UTC start, 20261204T185512Z>-<charger id>/, the last
``report_history`` runs (DEFAULT_HISTORY unless --report-history says otherwise)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HISTORY_DIR = "history"
DEFAULT_HISTORY = 20
_HISTORY_ENTRY = re.compile(r"^\d{8}T\d{6}Z-")


def keep_in_history(directory: Path, paths: Sequence[Path], report: Mapping[str, Any], started: str, keep: int) -> None:
    """Copy this run's report files under <directory>/history/<UTC start>-<charger id>/ and keep the last
    *keep* runs and no more: a run never silently destroys an earlier run's report, and the folder does not
    grow without bound (docs/rules-first-hour.md)."""
    if keep <= 0 or not paths or not report:
        return
    run = report.get("run") or {}
    charger = report.get("charger") or {}
    stamp = re.sub(r"[^0-9T]", "", str(run.get("started") or started).split(".")[0].split("+")[0])[:15] + "Z"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(charger.get("id") or "charger"))[:80]
    history = directory / HISTORY_DIR
    history.mkdir(parents=True, exist_ok=True)
    target = history / f"{stamp}-{name}"
    n = 2
    while target.exists():
        target = history / f"{stamp}-{name}-{n}"
        n += 1
    target.mkdir()
    for path in paths:
        shutil.copy2(path, target / path.name)
    runs = sorted(p for p in history.iterdir() if p.is_dir() and _HISTORY_ENTRY.match(p.name))
    for old in runs[: max(0, len(runs) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
