"""The Statistics and Schema artifacts (statistics): statistics.json (readable per-split
statistics), anomalies.json, statistics.pb (TFDV's DatasetFeatureStatisticsList),
vocabulary.txt for text (its name and format: edgepipe.contracts.text_tokens), and the schema
as schema.pbtxt (a tensorflow_metadata Schema text proto)."""

from __future__ import annotations

from typing import Any

from edgepipe.contracts.artifacts.files import WRITERS, PathLike, at, read_json, write_json

STATISTICS = "statistics.json"
ANOMALIES = "anomalies.json"
STATISTICS_PROTO = "statistics.pb"
SCHEMA = "schema.pbtxt"
WRITERS.update(dict.fromkeys((STATISTICS, ANOMALIES, STATISTICS_PROTO, SCHEMA), "statistics"))


def read_statistics(statistics_dir: PathLike) -> dict[str, Any]:
    """statistics.json: {"splits": {split: {"num_examples", "features": {...}}}, ...}."""
    return read_json(at(statistics_dir, STATISTICS))


def write_statistics(statistics_dir: PathLike, statistics: dict[str, Any]) -> None:
    write_json(at(statistics_dir, STATISTICS), statistics)


def read_anomalies(statistics_dir: PathLike) -> list[dict[str, Any]]:
    return read_json(at(statistics_dir, ANOMALIES))["anomalies"]


def write_anomalies(statistics_dir: PathLike, anomalies: list[dict[str, Any]]) -> None:
    write_json(at(statistics_dir, ANOMALIES), {"anomalies": anomalies})
