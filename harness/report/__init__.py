"""The certification report: per-requirement verdicts with evidence, as JSON and HTML.

* :func:`build_report` turns what a run observed into the report dictionary (the JSON schema is
  documented in ``SCHEMA.md``, formalised in ``templates/certification.schema.json``); :func:`build`
  makes the typed report (:mod:`harness.report.types`) that :func:`seal` serialises to that dictionary;
* :func:`write_report` writes ``certification.json`` and ``certification.html``;
* :func:`verify` checks a written report against its own SHA-256 digest
  (``python -m harness.report verify reports/certification.json``);
* :mod:`harness.report.collector` is the pytest side (``ReportCollector``, ``RUN_INFO``,
  ``EVIDENCE``).
"""

from __future__ import annotations

from .model import (
    CERTIFIED,
    FAIL,
    INCOMPLETE,
    NOT_APPLICABLE,
    NOT_CERTIFIED,
    NOT_TESTED,
    PASS,
    REDACTED,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    build,
    build_report,
    canonical_json,
    compute_digest,
    seal,
)
from .render import check, load_report, render_html, schema, verify, write_report

__all__ = [
    "CERTIFIED",
    "FAIL",
    "INCOMPLETE",
    "NOT_APPLICABLE",
    "NOT_CERTIFIED",
    "NOT_TESTED",
    "PASS",
    "REDACTED",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "build",
    "build_report",
    "canonical_json",
    "check",
    "compute_digest",
    "load_report",
    "render_html",
    "schema",
    "seal",
    "verify",
    "write_report",
]
