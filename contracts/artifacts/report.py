"""The Report artifact (report): report.html, one self-contained page, and summary.json, the
same numbers for scripts and CI."""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.contracts.artifacts.files import WRITERS, PathLike, read_json, write_json

REPORT_HTML = "report.html"
REPORT_SUMMARY = "summary.json"
WRITERS.update(dict.fromkeys((REPORT_HTML, REPORT_SUMMARY), "report"))


def write_report_summary(report_dir: PathLike, summary: dict[str, Any]) -> None:
    write_json(pathlib.Path(report_dir, REPORT_SUMMARY), summary)


def read_report_summary(report_dir: PathLike) -> dict[str, Any]:
    return read_json(pathlib.Path(report_dir, REPORT_SUMMARY))
