"""The labelling queue: unlabelled records ranked most useful to label first, by the ranking
the config picks, written by the evaluate stage from the served model's predictions."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.components.evaluate.metrics import labeling_queue
from edgepipe.contracts import unlabeled_artifacts

NAMES = ["a", "b", "c"]
# Chosen so the three rankings disagree:
#   u1 top 0.50, margin 0.00 (0.50 vs 0.50), entropy 0.69
#   u2 top 0.40, margin 0.10 (0.40 vs 0.30), entropy 1.09 (nearly uniform)
#   u3 top 0.45, margin 0.01, entropy 1.00
#   u4 top 0.98, margin 0.97, entropy 0.11
PROBABILITIES = np.array([[0.50, 0.50, 0.00], [0.40, 0.30, 0.30], [0.45, 0.44, 0.11],
                          [0.98, 0.01, 0.01]])
IDS = ["u1", "u2", "u3", "u4"]


@pytest.mark.parametrize("ranking, expected", [
    ("least_confidence", ["u2", "u3", "u1", "u4"]),
    ("margin", ["u1", "u3", "u2", "u4"]),
    ("entropy", ["u2", "u3", "u1", "u4"]),
])
def test_each_ranking_puts_the_most_useful_first(ranking, expected):
    rows = labeling_queue(IDS, PROBABILITIES, NAMES, {"u1": "folder/u1.png"}, ranking)
    assert [row["id"] for row in rows] == expected
    assert [row["rank"] for row in rows] == [1, 2, 3, 4]
    first = {row["id"]: row for row in rows}["u1"]
    assert first["source"] == "folder/u1.png" and first["predicted"] == "a"
    assert first["margin"] == pytest.approx(0.0) and first["entropy"] == pytest.approx(np.log(2))
    assert {row["id"]: row for row in rows}["u2"]["source"] == ""  # unknown: empty


def test_ties_go_by_id_and_size_cuts_the_queue():
    same = np.tile([[0.6, 0.3, 0.1]], (3, 1))
    rows = labeling_queue(["z", "b", "m"], same, NAMES, {}, "entropy", size=2)
    assert [row["id"] for row in rows] == ["b", "m"]


def test_evaluate_writes_the_queue_of_the_unlabeled_split(semi_evaluation_artifact,
                                                          tiny_unlabeled, run_stage):
    rows = unlabeled_artifacts.read_labeling_queue(semi_evaluation_artifact.path)
    assert len(rows) == 400 and [row["rank"] for row in rows] == list(range(1, 401))
    margins = [row["margin"] for row in rows]
    assert margins == sorted(margins)  # the fixture asks for "margin"
    assert rows[0]["source"] == f"{tiny_unlabeled['images']}:{rows[0]['id'].rsplit(':', 1)[1]}"
    assert all(0 <= row["margin"] <= row["confidence"] <= 1 for row in rows)
    properties = semi_evaluation_artifact.properties["labeling_queue"]
    assert properties["ranking"] == "margin" and properties["records"] == 400
    assert properties["top"] == [row["id"] for row in rows[:5]]
    assert sum(properties["predicted_per_class"].values()) == 400
    assert unlabeled_artifacts.read_labeling_queue(semi_evaluation_artifact.path, 3) == rows[:3]


def test_without_unlabeled_data_there_is_no_queue(evaluation_artifact):
    assert not unlabeled_artifacts.has_labeling_queue(evaluation_artifact.path)
    assert "labeling_queue" not in evaluation_artifact.properties
