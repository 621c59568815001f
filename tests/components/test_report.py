"""The report stage: a self-contained HTML page and a summary.json that agree with the artifacts."""

from __future__ import annotations

import base64
import csv
import html
import html.parser
import json
import re
import shutil
import struct

import pytest

from components import report
from pipeline.stage import Artifact

LOW_CONFIDENCE = 7  # not the default (12), so the test sees the config being honoured


class PageParser(html.parser.HTMLParser):
    """Collects every start tag as (tag, attributes) in document order."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def find(self, tag: str, **wanted) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag
                and all(wanted[key] in attrs.get(key.rstrip("_"), "").split() for key in wanted)]


@pytest.fixture(scope="module")
def report_run(run_stage, examples_artifact, statistics_artifacts, model_artifact,
               evaluation_artifact, tflite_artifact):
    inputs = {"examples": examples_artifact, "statistics": statistics_artifacts["statistics"],
              "model": model_artifact, "evaluation": evaluation_artifact,
              "tflite": tflite_artifact}
    properties, artifacts = run_stage("report", inputs, {"low_confidence_examples": LOW_CONFIDENCE})
    folder = artifacts["report"].path
    text = (folder / "report.html").read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(text)
    summary = json.loads((folder / "summary.json").read_text())
    return {"properties": properties, "html": text, "page": parser, "summary": summary}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def _variants(tflite_artifact) -> list[dict]:
    return json.loads((tflite_artifact.path / "variants.json").read_text())


def _predictions(evaluation_artifact) -> list[dict]:
    with open(evaluation_artifact.path / "predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_page_shows_confusion_matrix_and_a_row_per_variant(report_run, tflite_artifact):
    page = report_run["page"]
    figure_ids = [attrs["id"] for attrs in page.find("figure")]
    assert "fig-confusion-matrix" in figure_ids
    for expected in ("fig-label-distribution", "fig-pixel-histogram", "fig-training-examples",
                     "fig-training-curves", "fig-low-confidence", "fig-variant-tradeoff"):
        assert expected in figure_ids
    assert len(page.find("figcaption")) == len(figure_ids)
    rows = page.find("tr", class_="variant")
    assert [row["data-variant"] for row in rows] == [v["name"] for v in _variants(tflite_artifact)]
    for name in ("header", "data", "training", "evaluation", "low-confidence", "quantization"):
        assert [attrs for tag, attrs in page.tags if attrs.get("id") == name], name


def test_every_image_is_an_embedded_png_with_alt_text(report_run):
    images = report_run["page"].find("img")
    assert len(images) == 7
    for image in images:
        assert image["alt"].strip() and image["id"]
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        data = base64.b64decode(image["src"][len(prefix):], validate=True)
        assert len(data) > 1024
        width, height = _png_size(data)
        assert width >= 300 and height >= 150


def test_page_references_no_external_resource(report_run):
    text, page = report_run["html"], report_run["page"]
    assert not page.find("script") and not page.find("link") and not page.find("iframe")
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name, "")
            assert not re.match(r"\s*(https?:)?//", value), f"<{tag} {name}={value[:60]}>"
            assert not value or value.startswith(("data:image/png;base64,", "#")), value[:60]
    assert "@import" not in text and "url(" not in text


def test_summary_agrees_with_metrics_variants_and_blessing(report_run, evaluation_artifact,
                                                          tflite_artifact):
    summary = report_run["summary"]
    metrics = json.loads((evaluation_artifact.path / "metrics.json").read_text())
    assert summary["pipeline"] == "tests" and summary["run_id"].startswith("test-run-")
    assert summary["accuracy"] == pytest.approx(metrics["accuracy"])
    assert summary["blessed"] == (evaluation_artifact.path / "BLESSED").is_file()
    shown = re.search(r'id="verdict"[^>]*>\s*<strong>(.*?)</strong>\s*<span>(.*?)</span>',
                      report_run["html"], re.S)
    assert shown.group(1) == ("BLESSED" if summary["blessed"] else "NOT BLESSED")
    assert html.unescape(shown.group(2)) == summary["blessing_reason"]
    assert summary["data"]["splits"]["test"] == metrics["num_examples"]

    variants = _variants(tflite_artifact)
    assert [row["name"] for row in summary["variants"]] == [v["name"] for v in variants]
    float32 = next(v for v in variants if v["name"] == "float32")
    for row, variant in zip(summary["variants"], variants):
        assert row["size_bytes"] == variant["size_bytes"]
        assert row["accuracy"] == pytest.approx(variant["accuracy"])
        delta_points = 100 * (variant["accuracy"] - metrics["accuracy"])
        assert row["delta_points"] == pytest.approx(delta_points)
        assert row["size_percent_of_float32"] == pytest.approx(
            100 * variant["size_bytes"] / float32["size_bytes"], abs=0.05)

    # The rule, recomputed: smallest variant within 1 point of Keras, else float32.
    close = [v for v in variants if 100 * (v["accuracy"] - metrics["accuracy"]) >= -1.0 - 1e-9]
    expected = min(close, key=lambda v: v["size_bytes"])["name"] if close else "float32"
    assert summary["deployable_variant"]["name"] == expected
    assert report_run["properties"]["deployable_variant"] == expected
    chosen = report_run["page"].find("tr", class_="chosen")
    assert [row["data-variant"] for row in chosen] == [expected]


def test_deployable_falls_back_to_float32_when_quantization_costs_accuracy(tflite_artifact):
    rows = [{**v, "delta_points": 0.0} for v in _variants(tflite_artifact)]
    smallest = min(rows, key=lambda row: row["size_bytes"])
    assert report.choose_deployable(rows, 0.5, 1.0)["name"] == smallest["name"]
    for row in rows:
        row["delta_points"] = 0.0 if row["name"] == "float32" else -1.5
    assert report.choose_deployable(rows, 0.5, 1.0)["name"] == "float32"
    assert report.choose_deployable([r for r in rows if r["name"] != "float32"], 0.5, 1.0) is None


def test_low_confidence_gallery_shows_the_least_confident_predictions(report_run,
                                                                      evaluation_artifact):
    items = report_run["page"].find("tr", class_="low-confidence-item")
    assert len(items) == LOW_CONFIDENCE
    predictions = {row["id"]: row for row in _predictions(evaluation_artifact)}
    lowest = sorted(float(row["confidence"]) for row in predictions.values())[:LOW_CONFIDENCE]
    shown = [float(predictions[item["data-id"]]["confidence"]) for item in items]
    assert shown == lowest  # least confident first, and no lower one left out
    for item in items:
        row = predictions[item["data-id"]]
        is_wrong = row["label"] != row["prediction"]
        assert ("wrong" in item["class"].split()) == is_wrong


def test_missing_blessing_file_is_a_clear_error(run_stage, tmp_path, examples_artifact,
                                                statistics_artifacts, model_artifact,
                                                evaluation_artifact, tflite_artifact):
    copy = tmp_path / "evaluation"
    shutil.copytree(evaluation_artifact.path, copy)
    for name in ("BLESSED", "NOT_BLESSED"):
        (copy / name).unlink(missing_ok=True)
    inputs = {"examples": examples_artifact, "statistics": statistics_artifacts["statistics"],
              "model": model_artifact, "evaluation": Artifact.load(copy),
              "tflite": tflite_artifact}
    with pytest.raises(ValueError, match="expected exactly one of BLESSED or NOT_BLESSED"):
        run_stage("report", inputs, {})
