"""The report stage: a self-contained HTML page and a summary.json that agree with the artifacts."""

from __future__ import annotations

import base64
import csv
import html
import html.parser
import json
import pathlib
import re
import shutil
import struct

import pytest

from edgepipe.components.report import stage as report, sections as report_sections
from edgepipe.pipeline.stage import Artifact
from tests.conftest import REPO, StageRunner

LOW_CONFIDENCE = 7  # not the default (12), so the test sees the config being honoured
IMAGE_FIGURES = (
    "fig-label-distribution", "fig-pixel-histogram", "fig-training-examples",
    "fig-training-curves", "fig-confusion-matrix", "fig-reliability", "fig-low-confidence",
    "fig-confident-wrong", "fig-conv-filters", "fig-activation-maps", "fig-variant-tradeoff",
)


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
    assert figure_ids == list(IMAGE_FIGURES)
    assert len(page.find("figcaption")) == len(figure_ids)
    rows = page.find("tr", class_="variant")
    assert [row["data-variant"] for row in rows] == [v["name"] for v in _variants(tflite_artifact)]
    for name in ("header", "overview", "data", "training", "evaluation", "low-confidence",
                 "network", "quantization", "blessing"):
        assert [attrs for tag, attrs in page.tags if attrs.get("id") == name], name


def test_every_image_is_an_embedded_png_with_alt_text(report_run):
    images = report_run["page"].find("img")
    assert len(images) == len(IMAGE_FIGURES)
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

    # The report shows quantize's choice (deployable.json), never a rule of its own.
    expected = json.loads((tflite_artifact.path / "deployable.json").read_text())["variant"]
    assert summary["deployable_variant"]["name"] == expected
    assert report_run["properties"]["deployable_variant"] == expected
    chosen = report_run["page"].find("tr", class_="chosen")
    assert [row["data-variant"] for row in chosen] == [expected]


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


def test_run_overview_shows_each_upstream_stage_and_whether_it_was_reused(
        report_run, examples_artifact, model_artifact):
    rows = report_run["page"].find("tr", class_="stage")
    assert [row["data-stage"] for row in rows] == ["ingest", "statistics", "train", "evaluate",
                                                   "quantize"]
    # Every fixture stage ran under its own run id, so from the report's run all were reused.
    assert all("cached" in row["class"].split() for row in rows)
    stages = {row["stage"]: row for row in report_run["summary"]["stages"]}
    train_record = json.loads((model_artifact.path.parent / "manifest.json").read_text())
    assert stages["train"]["seconds"] == train_record["seconds"] > 0
    assert stages["train"]["run_id"] == train_record["run_id"]
    assert stages["ingest"]["key"] == examples_artifact.key


def test_stage_runs_tell_this_run_from_the_cache(model_artifact, evaluation_artifact):
    run_id = json.loads((model_artifact.path.parent / "manifest.json").read_text())["run_id"]
    upstream = StageRunner.upstream({"model": model_artifact, "evaluation": evaluation_artifact},
                                    run_id)
    rows = report_sections.stage_runs(upstream)
    assert [(row["stage"], row["cached"]) for row in rows] == [("train", False),
                                                                ("evaluate", True)]


def test_evaluation_section_shows_calibration_slices_pairs_and_gates(report_run,
                                                                    evaluation_artifact):
    metrics = json.loads((evaluation_artifact.path / "metrics.json").read_text())
    summary, text, page = report_run["summary"], report_run["html"], report_run["page"]
    assert summary["ece"] == pytest.approx(metrics["calibration"]["ece"])
    assert summary["top_k_accuracy"] == metrics["top_k_accuracy"]
    assert f"{metrics['calibration']['ece']:.3f}" in text
    assert len(page.find("tr", class_="confused-pair")) == len(metrics["confused_pairs"])
    assert [table["data-slice"] for table in page.find("table", class_="slice-table")] == [
        "brightness"]
    gates = page.find("tr", class_="gate")
    assert [gate["data-gate"] for gate in gates] == ["absolute", "relative"]
    assert "no [registry] configured" in text
    assert summary["blessing_gates"] == metrics["blessing"]["gates"]


def test_confidently_wrong_gallery_shows_the_surest_mistakes(report_run, evaluation_artifact):
    items = report_run["page"].find("tr", class_="confident-wrong-item")
    singled = json.loads((evaluation_artifact.path / "singled_out.json").read_text())
    expected = [row["id"] for row in singled["most_confidently_wrong"][:LOW_CONFIDENCE]]
    assert expected and [item["data-id"] for item in items] == expected
    assert all("wrong" in item["class"].split() for item in items)
    assert report_run["summary"]["most_confidently_wrong_ids"] == expected


def test_inside_the_network_shows_the_first_convolution(report_run, model_artifact):
    from edgepipe.models.keras import keras

    model = keras.models.load_model(model_artifact.path / "model.keras")
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert report_run["summary"]["network"] == "cnn"
    filters = conv.get_weights()[0].shape[-1]
    assert f"<code>{conv.name}</code> has {filters} filters" in report_run["html"]


def test_lstm_hidden_states_come_from_the_trained_weights():
    import numpy as np

    from edgepipe.components.report import network as report_network
    from edgepipe.models import lstm
    from edgepipe.models.keras import keras

    batch = np.random.default_rng(0).normal(size=(4, 9, 3)).astype("float32")
    for bidirectional in (False, True):
        model = lstm.build((9, 3), 5, np.zeros(3), np.ones(3), units=(6, 4),
                           bidirectional=bidirectional)
        layer = model.get_layer("bilstm1" if bidirectional else "lstm1")
        states = report_network.lstm_states(model, layer, batch)
        assert states.shape == (4, 9, 12 if bidirectional else 6)
        # The first layer already returns sequences here: the copy must reproduce them exactly.
        expected = keras.Model(model.inputs, layer.output)(batch).numpy()
        np.testing.assert_allclose(states, expected, atol=1e-6)
        # A last LSTM returns only its final state: it is the copy's last step.
        last = model.get_layer("bilstm2" if bidirectional else "lstm2")
        final = keras.Model(model.inputs, last.output)(batch).numpy()
        np.testing.assert_allclose(report_network.lstm_states(model, last, batch)[:, -1, :4],
                                   final[:, :4], atol=1e-6)


def test_declared_deployable_variant_and_skipped_variants_are_shown(
        run_stage, tmp_path, examples_artifact, statistics_artifacts, model_artifact,
        evaluation_artifact, tflite_artifact):
    copy = tmp_path / "tflite"
    shutil.copytree(tflite_artifact.path, copy)
    variants = _variants(tflite_artifact)
    variants.append({"name": "int16x8", "skipped": "not supported by this converter build"})
    (copy / "variants.json").write_text(json.dumps(variants))
    (copy / "deployable.json").write_text(json.dumps(
        {"variant": "float16", "path": "float16.tflite", "reason": "policy says so",
         "policy": {"name": "smallest_within", "max_accuracy_drop_points": 0.5,
                    "keras_accuracy": 0.9}}))
    inputs = {"examples": examples_artifact, "statistics": statistics_artifacts["statistics"],
              "model": model_artifact, "evaluation": evaluation_artifact,
              "tflite": Artifact.load(copy)}
    properties, artifacts = run_stage("report", inputs, {})
    summary = json.loads((artifacts["report"].path / "summary.json").read_text())
    assert properties["deployable_variant"] == "float16"
    assert summary["deployable_variant"]["reason"] == "policy says so"
    assert summary["deployable_variant"]["policy"]["name"] == "smallest_within"
    assert summary["skipped_variants"] == [{"name": "int16x8",
                                            "reason": "not supported by this converter build"}]
    text = (artifacts["report"].path / "report.html").read_text()
    assert "skipped: not supported by this converter build" in text
    # One Keras figure: the report compares the variants with the number the deploy policy
    # used (quantize's own measurement), not with evaluate's.
    assert "Keras model (90.0%, measured by the quantize stage" in text
    float16 = next(row for row in summary["variants"] if row["name"] == "float16")
    assert float16["delta_points"] == pytest.approx(100 * (float16["accuracy"] - 0.9))

    (copy / "deployable.json").write_text(json.dumps({"variant": "int4", "path": "int4.tflite"}))
    with pytest.raises(ValueError, match="deployable.json names variant 'int4'"):
        run_stage("report", inputs, {})


# --- The sequence path: a tiny JapaneseVowels pipeline, LSTM, its report --------------------

SEQUENCE_FIGURES = (
    "fig-label-distribution", "fig-sequence-lengths", "fig-training-examples",
    "fig-training-curves", "fig-confusion-matrix", "fig-reliability", "fig-low-confidence",
    "fig-confident-wrong", "fig-hidden-states", "fig-variant-tradeoff",
)


def _subset_ts(source: pathlib.Path, target: pathlib.Path, every: int) -> None:
    """The header and every `every`-th series of a .ts file: all nine speakers, few series."""
    lines = source.read_text().splitlines()
    start = next(index for index, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    target.write_text("\n".join(lines[:start] + lines[start::every]) + "\n")


_SEQUENCE_RUNS: dict[int, dict] = {}


def build_sequence_report(run_stage, tmp_path_factory) -> dict:
    """ingest (ts) → statistics → train (LSTM) → evaluate → quantize → report, all real and
    tiny; built once per test session (the browser test reuses it)."""
    if id(run_stage) not in _SEQUENCE_RUNS:
        _SEQUENCE_RUNS[id(run_stage)] = _sequence_pipeline(run_stage,
                                                           tmp_path_factory.mktemp("vowels"))
    return _SEQUENCE_RUNS[id(run_stage)]


def _sequence_pipeline(run_stage, folder: pathlib.Path) -> dict:
    data = REPO / "data" / "japanese_vowels"
    _subset_ts(data / "JapaneseVowels_TRAIN.ts", folder / "train.ts", every=3)  # 90 series
    _subset_ts(data / "JapaneseVowels_TEST.ts", folder / "test.ts", every=5)    # 74 series
    _, artifacts = run_stage("ingest", {}, {"source": "ts", "train": str(folder / "train.ts"),
                                            "test": str(folder / "test.ts")})
    examples = artifacts["examples"]
    _, statistics = run_stage("statistics", {"examples": examples}, {})
    _, artifacts = run_stage("train", {"examples": examples, **statistics},
                             {"model": "lstm", "model_options": {"units": [16]}, "epochs": 3,
                              "batch_size": 16})
    model = artifacts["model"]
    _, artifacts = run_stage("evaluate", {"examples": examples, "model": model}, {})
    evaluation = artifacts["evaluation"]
    _, artifacts = run_stage("quantize", {"examples": examples, "model": model},
                             {"variants": ["float32"], "representative_examples": 20,
                              "max_accuracy_drop_points": 100.0, "benchmark_tool": False})
    inputs = {"examples": examples, "statistics": statistics["statistics"], "model": model,
              "evaluation": evaluation, "tflite": artifacts["tflite"]}
    properties, artifacts = run_stage("report", inputs, {"low_confidence_examples": 4})
    return {"properties": properties, "report": artifacts["report"], "evaluation": evaluation,
            "examples": examples}


@pytest.fixture(scope="module")
def sequence_report(run_stage, tmp_path_factory):
    if not (REPO / "data" / "japanese_vowels" / "JapaneseVowels_TRAIN.ts").is_file():
        pytest.skip("data/japanese_vowels is not in this checkout")
    return build_sequence_report(run_stage, tmp_path_factory)


def test_sequence_report_draws_series_lengths_and_hidden_states(sequence_report):
    text = (sequence_report["report"].path / "report.html").read_text()
    page = PageParser()
    page.feed(text)
    summary = json.loads((sequence_report["report"].path / "summary.json").read_text())
    assert summary["input_feature"] == "sequence" and summary["network"] == "lstm"
    figures = [attrs["id"] for attrs in page.find("figure")]
    expected = [name for name in SEQUENCE_FIGURES
                if name != "fig-confident-wrong" or summary["most_confidently_wrong_ids"]]
    assert figures == expected
    for image in page.find("img"):
        data = base64.b64decode(image["src"].split(",", 1)[1], validate=True)
        assert min(_png_size(data)) >= 150
    # The evaluation sliced by sequence length, and the report shows that table.
    assert [table["data-slice"] for table in page.find("table", class_="slice-table")] == ["length"]
    metrics = json.loads((sequence_report["evaluation"].path / "metrics.json").read_text())
    rows = metrics["slices"]["length"]["rows"]
    assert sum(row["num_examples"] for row in rows) == metrics["num_examples"] == 74
    assert len(page.find("tr", class_="low-confidence-item")) == 4


@pytest.fixture(scope="module")
def text_report(run_stage, text_examples_artifact, text_statistics_artifacts,
                text_model_artifact, text_evaluation_artifact, text_tflite_artifact):
    inputs = {"examples": text_examples_artifact,
              "statistics": text_statistics_artifacts["statistics"],
              "model": text_model_artifact, "evaluation": text_evaluation_artifact,
              "tflite": text_tflite_artifact}
    _, artifacts = run_stage("report", inputs, {"low_confidence_examples": 5,
                                                "network_examples": 2})
    folder = artifacts["report"].path
    page = PageParser()
    text = (folder / "report.html").read_text(encoding="utf-8")
    page.feed(text)
    return {"html": text, "page": page,
            "summary": json.loads((folder / "summary.json").read_text())}


def test_text_report_shows_escaped_texts_token_lengths_vocabulary_and_hidden_states(
        text_report, text_examples_artifact, text_statistics_artifacts):
    import markupsafe

    from edgepipe.components.shared import examples_io
    from edgepipe.contracts import text_tokens

    summary, text = text_report["summary"], text_report["html"]
    assert summary["input_feature"] == "text" and summary["network"] == "lstm"
    figures = [attrs["id"] for attrs in text_report["page"].find("figure")]
    assert "fig-sequence-lengths" in figures and "fig-hidden-states" in figures
    assert "fig-low-confidence" not in figures  # texts are shown as text, not drawn
    assert "Text lengths in tokens per split" in text and "24 tokens" in text
    # Low-confidence examples appear as their text: HTML-escaped, cut to 160 characters.
    test = examples_io.load_numpy(text_examples_artifact.path, "test")
    by_id = dict(zip(test["id"], test["text"]))
    assert len(summary["lowest_confidence_ids"]) == 5
    for record_id in summary["lowest_confidence_ids"]:
        value = by_id[record_id]
        snippet = value if len(value) <= 160 else value[:159] + "…"
        assert str(markupsafe.escape(snippet)) in text, record_id
    # The vocabulary the model embeds, and the token-length slices of the evaluation.
    vocabulary = text_tokens.read_vocabulary(
        text_statistics_artifacts["statistics"].path / "vocabulary.txt")
    assert f"<strong>{len(vocabulary):,}</strong> ids" in text
    assert f"<code>{vocabulary[2]}</code>" in text
    assert summary["slices"]["length"]["description"].startswith("length of the text in tokens")
    assert "at each of the 24 tokens, for 2 test examples" in text


def test_variant_table_splits_each_variants_quantize_time(report_run, tflite_artifact):
    import re

    variants = _variants(tflite_artifact)
    for part in ("fine-tuning s", "conversion s", "measurement s"):
        assert f'<th class="num">{part}</th>' in report_run["html"]
    for variant in variants:
        row = re.search(rf'data-variant="{re.escape(variant["name"])}">(.*?)</tr>',
                        report_run["html"], re.DOTALL).group(1)
        for part in ("fine_tune", "convert", "measure"):
            cell = re.search(rf'class="num seconds-{part}">([^<]*)<', row).group(1)
            assert cell == f"{variant['seconds'][part]:.1f}"
    summary = {row["name"]: row for row in report_run["summary"]["variants"]}
    assert all(summary[v["name"]]["seconds"]["total"] == pytest.approx(
        sum(v["seconds"].values()), abs=0.02) for v in variants)


def test_report_reads_only_the_leading_train_records_it_shows(examples_artifact):
    from edgepipe.components.shared import examples_io

    everything = examples_io.load_numpy(examples_artifact.path, "train")
    leading = examples_io.leading_per_class(examples_artifact.path, "train", 2, 10)
    count = len(leading["label"])
    assert count < len(everything["label"])  # stopped early
    for key in ("id", "image", "label"):
        assert (leading[key] == everything[key][:count]).all()
    assert all((leading["label"] == label).sum() >= 2 for label in range(10))
    assert (everything["label"][:count - 1] == leading["label"][-1]).sum() < 2  # no sooner
