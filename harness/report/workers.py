"""pytest-xdist: one charger per worker; the controller merges what each worker's RUN_INFO snapshot says."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merge_run_info(base: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Merge a worker's RUN_INFO snapshot into *base* (in place)."""
    for key, value in other.items():
        if value in (None, "", [], {}):
            continue
        if key == "connection_attempts":
            seen = {repr(sorted(a.items())) if isinstance(a, Mapping) else repr(a) for a in base.get(key) or []}
            merged = list(base.get(key) or [])
            for a in value:
                k = repr(sorted(a.items())) if isinstance(a, Mapping) else repr(a)
                if k not in seen:
                    seen.add(k)
                    merged.append(a)
            merged.sort(key=lambda a: str(a.get("time", "")) if isinstance(a, Mapping) else "")
            base[key] = merged
        elif key == "secrets":
            merged = list(base.get(key) or [])
            merged.extend(s for s in value if s not in merged)
            base[key] = merged
        elif key == "harness_errors":  # each worker's own (docs/rules-silence.md §2): all of them
            merged = list(base.get(key) or [])
            merged.extend(f for f in value if f not in merged)
            base[key] = merged
        elif isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            sub = dict(base[key])
            for k, v in value.items():
                if v not in (None, "", [], {}):
                    sub[k] = v
            base[key] = sub
        else:
            base[key] = value


def worker_charger(worker: str, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """One worker's charger as the report lists it under ``charger.workers``."""
    found = snapshot.get("charger")
    charger: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    entry: dict[str, Any] = {"worker": worker}
    for key in ("id", "serial", "firmware"):
        entry[key] = charger.get(key)
    entry["endpoint"] = snapshot.get("endpoint")
    return entry
