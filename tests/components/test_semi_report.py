"""The report's unlabelled-data section: pseudo-labels per round and per class, their
confidence, their accuracy against labels only the report reads, and the labelling queue's
gallery; absent for a run without unlabelled data."""

from __future__ import annotations

import json
import re

import pytest

from edgepipe.contracts import unlabeled_artifacts
from tests.components.test_report import report_run  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def semi_report(run_stage, semi_examples_artifact, semi_statistics_artifacts, semi_model,
                semi_evaluation_artifact, tiny_unlabeled, tmp_path_factory):
    truth = tmp_path_factory.mktemp("truth") / "unlabeled_truth.csv"
    truth.write_text("id,label\n" + "".join(f"{record_id},{label}\n" for record_id, label
                                            in tiny_unlabeled["truth"].items()))
    _, quantized = run_stage("quantize", {"examples": semi_examples_artifact,
                                          "model": semi_model[1]},
                             {"variants": ["float32"], "representative_examples": 20,
                              "benchmark_tool": False})
    properties, artifacts = run_stage("report", {
        "examples": semi_examples_artifact, "statistics": semi_statistics_artifacts["statistics"],
        "model": semi_model[1], "evaluation": semi_evaluation_artifact,
        "tflite": quantized["tflite"]}, {"unlabeled_truth": str(truth),
                                         "labeling_queue_examples": 6})
    folder = artifacts["report"].path
    return (folder / "report.html").read_text(), json.loads((folder / "summary.json").read_text())


def test_the_report_shows_the_pseudo_labels_and_their_accuracy(semi_report, semi_model,
                                                              tiny_unlabeled):
    page, summary = semi_report
    (record,) = semi_model[0]["pseudo_labels"]
    assert re.search(rf'data-round="1" data-used="{record["selected"]}"', page)
    for figure in ("fig-pseudo-per-class", "fig-pseudo-confidence", "fig-labeling-queue"):
        assert f'id="{figure}-img"' in page
    (reported,) = summary["semi_supervised"]["pseudo_labels"]
    _, rows = unlabeled_artifacts.read_pseudo_labels(semi_model[1].path)
    truth = tiny_unlabeled["truth"]
    expected = sum(truth[row["id"]] == row["label"] for row in rows) / len(rows)
    assert reported["accuracy"] == pytest.approx(expected) and reported["checked"] == len(rows)
    assert reported["per_class"] == record["per_class"]
    assert f"{100 * expected:.1f}%" in page


def test_the_report_shows_the_top_of_the_labeling_queue(semi_report, semi_evaluation_artifact):
    page, summary = semi_report
    top = [row["id"] for row in
           unlabeled_artifacts.read_labeling_queue(semi_evaluation_artifact.path, 6)]
    assert summary["semi_supervised"]["labeling_queue_top_ids"] == top
    assert re.findall(r'class="queue-item" data-id="([^"]+)"', page) == top
    assert 'href="#unlabeled"' in page


def _headings(page: str) -> list[str]:
    return re.findall(r"<h2>(\d+)\. ([^<]+)</h2>", page)


def test_the_sections_are_numbered_in_order_with_the_unlabelled_one(semi_report):
    titles = [title for _, title in _headings(semi_report[0])]
    assert [int(number) for number, _ in _headings(semi_report[0])] == list(
        range(1, len(titles) + 1))
    assert titles.index("Unlabelled data: pseudo-labels and the labelling queue") == \
        titles.index("Uncertain and confidently wrong examples") + 1


def test_a_run_without_unlabeled_data_has_no_such_section(report_run):  # noqa: F811
    page = report_run["html"]
    assert 'id="unlabeled"' not in page and 'href="#unlabeled"' not in page
    assert "semi_supervised" not in report_run["summary"]
    assert _headings(page)[-1] == ("7", "Blessing")
