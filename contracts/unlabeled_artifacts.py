"""The artifact files about unlabelled data: one reader and one writer per file.

    Examples     unlabeled_sources.jsonl  {"id", "source"} per record of the unlabeled split:
                                          where a person finds it to label it (ingest)
    Model        pseudo_labels.json       semi-supervised training: method, settings, and per
                                          round the pseudo-labels used per class and their
                                          confidence histogram (train)
                 pseudo_labels.csv        round, id, label, confidence of every pseudo-label a
                                          round trained on (train)
    Evaluation   labeling_queue.csv       rank, id, source, predicted, confidence, margin,
                                          entropy: the unlabeled records, most useful to
                                          label first (evaluate)

The same rules as edgepipe.contracts.artifacts (whose helpers these use): a missing or torn
file is an ArtifactFileError naming it and the stage to re-run; files are written through a
temporary file and a rename. Standard library only.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib
from typing import Any, Iterable

from edgepipe.contracts import storage
from edgepipe.contracts.artifacts.files import (WRITERS, ArtifactFileError, PathLike,
                                                read_json, text, write_csv, write_json)

UNLABELED_SOURCES = "unlabeled_sources.jsonl"
PSEUDO_LABELS = "pseudo_labels.json"
LABELING_QUEUE = "labeling_queue.csv"
WRITERS.update({UNLABELED_SOURCES: "ingest", PSEUDO_LABELS: "train",
                "pseudo_labels.csv": "train", LABELING_QUEUE: "evaluate"})

PSEUDO_LABEL_ROWS = "pseudo_labels.csv"
QUEUE_COLUMNS = ("rank", "id", "source", "predicted", "confidence", "margin", "entropy")
QUEUE_NUMBERS = ("confidence", "margin", "entropy")


def _rows(path: pathlib.Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text(path), newline="")))


# ---------------------------------------------------------------- Examples


def unlabeled_sources_path(examples_dir: PathLike) -> str:
    """Where ingest's Beam pipeline writes the file (it writes the lines itself); a path or,
    in an object-store folder, a URI."""
    return storage.join(examples_dir, UNLABELED_SOURCES)


def read_unlabeled_sources(examples_dir: PathLike) -> dict[str, str]:
    """{record id: raw location} of the unlabeled split's records."""
    path = unlabeled_sources_path(examples_dir)
    try:
        return {row["id"]: row["source"] for row in map(json.loads, text(path).splitlines())}
    except (ValueError, KeyError, TypeError) as error:
        raise ArtifactFileError(f"{path}: expected JSON lines with id and source ({error!r}); "
                                "re-run the ingest stage.") from None


# ---------------------------------------------------------------- Model


def write_pseudo_labels(model_dir: PathLike, summary: dict[str, Any],
                        rows: Iterable[dict]) -> None:
    """pseudo_labels.json (the summary) and pseudo_labels.csv (one row per pseudo-label)."""
    write_json(pathlib.Path(model_dir, PSEUDO_LABELS), summary)
    write_csv(pathlib.Path(model_dir, PSEUDO_LABEL_ROWS), ("round", "id", "label", "confidence"),
              ([row["round"], row["id"], row["label"], f"{row['confidence']:.6f}"]
               for row in rows))


def has_pseudo_labels(model_dir: PathLike) -> bool:
    """Whether the model was trained semi-supervised (the train stage wrote the files)."""
    return pathlib.Path(model_dir, PSEUDO_LABELS).is_file()


def read_pseudo_labels(model_dir: PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(pseudo_labels.json, the rows of pseudo_labels.csv with typed values)."""
    summary = read_json(pathlib.Path(model_dir, PSEUDO_LABELS))
    path = pathlib.Path(model_dir, PSEUDO_LABEL_ROWS)
    try:
        rows = [{"round": int(row["round"]), "id": row["id"], "label": int(row["label"]),
                 "confidence": float(row["confidence"])} for row in _rows(path)]
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactFileError(f"{path}: expected columns round, id, label, confidence "
                                f"({error!r}); re-run the train stage.") from None
    return summary, rows


# ---------------------------------------------------------------- Evaluation


def write_labeling_queue(evaluation_dir: PathLike, rows: Iterable[dict]) -> None:
    """labeling_queue.csv: the unlabeled records, most useful to label first."""
    write_csv(pathlib.Path(evaluation_dir, LABELING_QUEUE), QUEUE_COLUMNS,
              ([row["rank"], row["id"], row["source"], row["predicted"],
                *(f"{row[key]:.6f}" for key in QUEUE_NUMBERS)] for row in rows))


def has_labeling_queue(evaluation_dir: PathLike) -> bool:
    return pathlib.Path(evaluation_dir, LABELING_QUEUE).is_file()


def read_labeling_queue(evaluation_dir: PathLike, limit: int | None = None) -> list[dict]:
    """The first `limit` rows (all by default) of labeling_queue.csv, typed."""
    path = pathlib.Path(evaluation_dir, LABELING_QUEUE)
    try:
        return [{**row, "rank": int(row["rank"]), **{key: float(row[key])
                                                     for key in QUEUE_NUMBERS}}
                for row in _rows(path)[:limit]]
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactFileError(f"{path}: expected columns {', '.join(QUEUE_COLUMNS)} "
                                f"({error!r}); re-run the evaluate stage.") from None
