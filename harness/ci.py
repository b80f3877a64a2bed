"""Output that fits CI (docs/rules-ci.md): plain terminal lines, a one-line verdict at the very end, and a
short Markdown summary of the run.

- ``--ci`` (or ini ``ci = true``, or the environment variable ``CI=true`` that GitHub Actions and GitLab CI
  set) turns on *CI output* (``Settings.ci``): no in-place rewriting of the terminal line (pytest's and the
  harness's, e.g. the manual backend's countdown: a CI log is a file, where a carriage return only makes
  garbage), no colour unless the CI's log renders it (GitHub Actions, GitLab CI) or it is asked for
  (``--color=yes``, ``PY_COLORS=1``, ``FORCE_COLOR``; ``--color=no`` / ``NO_COLOR`` turn it off), and as the
  very last line of the run one line
  with the verdict, the exit status, the failed requirements and where the report is.
- Every run that writes a report also writes ``summary.md`` next to it (the same for every CI), and, when
  the environment variable ``GITHUB_STEP_SUMMARY`` names a file (GitHub Actions sets it for each step),
  appends the same Markdown to it, so the verdict shows on the workflow run's page.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

SUMMARY_NAME = "summary.md"
#: Environment variable of GitHub Actions: a file whose Markdown is shown on the run's summary page.
GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
#: Requirement verdicts the summary lists, one line each, in this order (worst first).
_LISTED = ("fail", "incomplete", "not tested")
_EXIT_MEANING = {
    0: "passed",
    1: "failed",
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "no tests collected",
    6: "incomplete",
}


#: Environment variables (set to "true") of CI services whose logs render ANSI colours.
COLOUR_CIS = ("GITHUB_ACTIONS", "GITLAB_CI")


def colour_wanted(config: pytest.Config, environ: Mapping[str, str] | None = None) -> bool:
    """Colour under CI output: what the user asked for (--color=yes/no, NO_COLOR, PY_COLORS, FORCE_COLOR:
    pytest's switches), else only on a CI whose log renders ANSI colours (GitHub Actions, GitLab CI)."""
    env = os.environ if environ is None else environ
    option = getattr(config.option, "color", "auto")
    if option == "no" or env.get("NO_COLOR") or env.get("PY_COLORS") == "0":
        return False
    if option == "yes" or env.get("PY_COLORS") == "1" or env.get("FORCE_COLOR"):
        return True
    return any(env.get(name, "").lower() == "true" for name in COLOUR_CIS)


def plain_terminal(config: pytest.Config) -> None:
    """CI output: no in-place rewriting, colour only where it renders (pytest's terminal reporter)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    with contextlib.suppress(Exception):  # pytest internals: best effort, never break a run
        from _pytest.compat import CallableBool

        # pytest rewrites the current line ("collecting ...", the manual backend's countdown) only on a tty.
        reporter.isatty = CallableBool(False)
    colour = colour_wanted(config)
    with contextlib.suppress(Exception):
        reporter._tw.hasmarkup = colour
        reporter.hasmarkup = colour


def _failed_requirements(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The requirements that decide the verdict (``blocking`` in the report: mandatory ones, an applicable
    FW-1; not NF-1, NF-2, ADV-*) and kept the run from passing: failed first, then incomplete, not tested;
    outside those a partial quick run did not select."""
    rows = [
        r
        for r in report.get("requirements") or []
        if isinstance(r, Mapping) and r.get("blocking") and r.get("verdict") in _LISTED
        and "not selected in this run" not in str(r.get("reason") or "")
    ]
    return sorted(rows, key=lambda r: _LISTED.index(str(r.get("verdict"))))


def _one_line(text: object, limit: int = 240) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _md(text: str) -> str:
    """Text safe inside a Markdown line (a charger's words never become markup or HTML)."""
    out = []
    for ch in text:
        if ch in "\\`*[]<>|":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def failed_ids(report: Mapping[str, Any]) -> list[str]:
    return [str(r.get("id")) for r in _failed_requirements(report) if r.get("verdict") == "fail"]


def markdown_summary(report: Mapping[str, Any], exit_status: int | None, report_paths: Sequence[Path]) -> str:
    """A short Markdown summary: the verdict, the requirements that kept it from passing (one line each),
    the advisory findings' count, and where the report is."""
    overall = str(report.get("overall") or "?")
    run: Mapping[str, Any] = report["run"] if isinstance(report.get("run"), Mapping) else {}
    charger: Mapping[str, Any] = report["charger"] if isinstance(report.get("charger"), Mapping) else {}
    icon = {"certified": "✅", "rehearsal passed": "✅", "not certified": "❌"}.get(overall, "⚠️")
    status = f", exit status {exit_status}" if exit_status is not None else ""
    lines = [
        f"### {icon} ev.energy OCPP 1.6J: {overall.upper()}",
        "",
        f"Charger `{_md(str(charger.get('id') or '?'))}`, {run.get('mode') or '?'} mode, "
        f"backend {run.get('backend') or '?'}{status}.",
        "",
        _md(_one_line(report.get("overall_reason"), 600)),
        "",
    ]
    rows = _failed_requirements(report)
    if rows:
        lines.append("| requirement | verdict | why |")
        lines.append("| --- | --- | --- |")
        for r in rows:
            lines.append(
                f"| **{_md(str(r.get('id')))}** {_md(_one_line(r.get('title'), 80))} | {r.get('verdict')} "
                f"| {_md(_one_line(r.get('reason')))} |"
            )
        lines.append("")
    findings = sum(len(a.get("findings") or []) for a in report.get("advisory_requirements") or [] if isinstance(a, Mapping))
    if findings:
        lines.append(f"{findings} advisory finding(s), which do not affect the verdict: see the report.")
        lines.append("")
    where = ", ".join(f"`{_md(str(p))}`" for p in report_paths)
    lines.append(f"Report: {where} (in the job's artifacts).")
    return "\n".join(lines) + "\n"


def verdict_line(report: Mapping[str, Any], exit_status: int | None, report_paths: Sequence[Path]) -> str:
    """The one line a CI log ends with."""
    overall = str(report.get("overall") or "?").upper()
    status = f" (exit status {exit_status}: {_EXIT_MEANING.get(exit_status, '?')})" if exit_status is not None else ""
    parts = [f"ev.energy verdict: {overall}{status}"]
    rows = _failed_requirements(report)
    for verdict in _LISTED:
        ids = [str(r.get("id")) for r in rows if r.get("verdict") == verdict]
        if ids:
            parts.append(f"{verdict}: {', '.join(ids)}")
    html = [p for p in report_paths if str(p).endswith(".html")]
    if html or report_paths:
        parts.append(f"report: {(html or list(report_paths))[0]}")
    return "; ".join(parts)


def write_summaries(
    report: Mapping[str, Any] | None, exit_status: int | None, report_paths: Sequence[Path], report_dir: Path,
    error: str | None = None,
) -> Path | None:
    """Write ``summary.md`` in the report folder and append it to $GITHUB_STEP_SUMMARY when that is set.
    Returns the summary's path (None when nothing was written). Never raises: a summary is a convenience."""
    if report is None:
        if not error:
            return None
        text = (
            "### ⚠️ ev.energy OCPP 1.6J: the certification report was NOT written\n\n"
            f"```\n{_one_line(error, 2000)}\n```\n"
        )
    else:
        text = markdown_summary(report, exit_status, report_paths)
    path: Path | None = report_dir / SUMMARY_NAME
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / SUMMARY_NAME).write_text(text, encoding="utf-8")
    except OSError:
        path = None
    target = os.environ.get(GITHUB_STEP_SUMMARY)
    if target:
        with contextlib.suppress(OSError):
            with open(target, "a", encoding="utf-8") as out:
                out.write(text + "\n")
    return path


class CIOutput:
    """pytest plugin object: the summaries after the report is written, the CI terminal."""

    def __init__(self, config: pytest.Config, ci: bool) -> None:
        self.config = config
        self.ci = ci
        self.summary: Path | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.ci:
            plain_terminal(self.config)

    def _collector(self) -> Any:  # harness.report's ReportCollector, read by duck typing: ci.py does not import it
        return self.config.pluginmanager.get_plugin("ev-energy-report")

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # After pytest's own last line ("=== 48 passed in 20.1s ==="): the verdict is the log's last line.
        if hasattr(config, "workerinput"):
            return
        collector = self._collector()
        if collector is None or getattr(collector, "is_worker", False):
            return
        report = getattr(collector, "report", None)
        paths = list(getattr(collector, "paths", None) or ())
        error = getattr(collector, "error", None)
        if report is None and not error:
            return
        try:
            report_dir = collector._report_dir()
        except Exception:
            return
        status = getattr(collector, "exit_status", None)
        self.summary = write_summaries(report, status, paths, report_dir, error)
        if not self.ci:
            return
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        line = (
            verdict_line(report, status, paths)
            if report is not None
            else "ev.energy verdict: none: the certification report was NOT written (see above)"
        )
        if reporter is not None:
            reporter.write_line(line)
            reporter.flush()
        else:
            print(line, flush=True)
