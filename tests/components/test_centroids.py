"""Centroid detection (`[train] model = "fomo"`, edgepipe.contracts.tasks.CENTROIDS): the
refusals of a detector with another task (and of a classifier with task detection), the
server's centroids in the pixels of the image sent (a real conversion on LiteRT), and (slow)
the real stages on the tiny VOC set (tests/detection_fixtures.py): one training step that
changes the weights, centroid precision/recall/F1 in evaluate with its gate, TFLite variants
scored by centroid F1 with standard metadata, and the report."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.contracts import artifacts
from tests.detection_fixtures import CLASSES, FOMO_OPTIONS


@pytest.mark.parametrize("task, model, needle", [
    ("classification", "ssd", "is a detector: it learns [pipeline] task = 'detection' only"),
    ("classification", "fomo", "is a detector: it learns [pipeline] task = 'detection' only"),
    ("detection", "cnn", "needs one of ['ssd', 'fomo']"),
])
def test_a_model_that_cannot_learn_the_task_is_refused_naming_the_key(task, model, needle):
    from edgepipe.components.train.stage import Config

    with pytest.raises(ValueError) as raised:
        Config.model_validate({"task": task, "model": model})
    assert "[train] model" in str(raised.value) and needle in str(raised.value)
    assert "set [" in str(raised.value)  # how to fix it
    Config.model_validate({"task": "detection", "model": "fomo"})  # the fitting pair passes


@pytest.mark.parametrize("task", ["detection", "centroids"])
def test_a_user_classifier_for_detection_is_refused_before_training(task):
    """A user's builder passes the config check (it is not imported then); the train stage
    refuses its class probabilities when it puts the detection head on it."""
    from edgepipe.components.shared import task_heads
    from edgepipe.models.keras import keras

    inputs = keras.Input((32, 32, 3))
    classifier = keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs)), name="mine")
    with pytest.raises(ValueError, match=r"model 'mine' returns \(None, 5\).*\[train\] model"):
        task_heads.HEADS[task](keras, classifier, {"class_names": CLASSES})


def test_fomo_makes_detection_the_centroid_task():
    from edgepipe.contracts import tasks

    assert tasks.for_model("detection", "fomo") is tasks.CENTROIDS
    assert tasks.for_model("detection", "ssd") is tasks.DETECTION
    assert tasks.of_model({"task": "centroids"}).primary.name == "centroid_f1"
    with pytest.raises(ValueError):  # not a [pipeline] task of its own
        tasks.get("centroids")


@pytest.fixture(scope="module")
def class_two_everywhere():
    """A 64x64 fomo whose head says class 2 in every cell (its logits' bias), converted to a
    float32 TFLite for real: its one centroid is the centre of the model input."""
    from edgepipe.components.quantize import convert
    from edgepipe.models import fomo

    model = fomo.build([64, 64, 3], len(CLASSES), 100.0, 3000.0, **FOMO_OPTIONS)
    kernel, bias = model.get_layer("head_logits").get_weights()
    bias[:] = 0.0
    bias[1 + 2] = 20.0
    model.get_layer("head_logits").set_weights([np.zeros_like(kernel), bias])
    return convert.convert(model, "float32", np.zeros((1, 64, 64, 3), np.float32))


def test_serving_answers_centroids_in_the_pixels_of_the_image_sent(class_two_everywhere,
                                                                    tmp_path):
    """An encoded 200x100 image is letterboxed to 64x64 (scale 0.32, 16 rows of padding
    above), run on serving's LiteRT runtime, and the centroid at the input's centre comes
    back at the sent image's centre, (100, 50) pixels."""
    import base64
    import io

    from PIL import Image

    from edgepipe.serving import answers
    from edgepipe.serving.requests import InputSpec, parse_predict
    from edgepipe.serving.runtime import LiteRTRuntime

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 200, 3), np.uint8)).save(
        buffer, format="PNG")
    parsed = parse_predict({"instances": [{"b64": base64.b64encode(buffer.getvalue()).decode()}]},
                           InputSpec("image", (64, 64, 3), "uint8", False), 8)
    (tflite := tmp_path / "model.tflite").write_bytes(class_two_everywhere)
    heatmaps = LiteRTRuntime(tflite, 1).predict(np.stack(parsed.values).astype(np.float32))
    assert heatmaps.shape == (1, 8, 8, 1 + len(CLASSES))
    answer = answers.answer("centroids", heatmaps, CLASSES, False, parsed.letterboxes)
    (found,) = answer["predictions"]
    assert len(found) == 1 and found[0]["class"] == CLASSES[2] and found[0]["score"] > 0.99
    assert (found[0]["x"], found[0]["y"]) == (pytest.approx(100.0), pytest.approx(50.0))
    # a pixel array (no letterbox): fractions of the model input
    raw = answers.answer("centroids", heatmaps, CLASSES, True)["outputs"][0][0]
    assert (raw["x"], raw["y"], raw["coordinates"]) == (0.5, 0.5, "fractions of the model input")


@pytest.mark.slow  # trains, evaluates, quantizes and reports through the stages
def test_fomo_trains_a_real_step_and_evaluate_scores_centroids(run_stage, voc_examples,
                                                              centroid_model,
                                                              centroid_evaluation):
    from edgepipe.models.keras import keras

    properties, outputs = centroid_model
    model_dir = outputs["model"].path
    info = artifacts.read_model_info(model_dir)
    assert info["task"] == "centroids" and info["grid"] == [8, 8] and info["model"] == "fomo"
    # 3x3 convolutions without bias (3-8, 8-8, 8-16, 16-16, 16-16, 16-16), six batch norms,
    # a 1x1 16-16 layer and the 1x1 16-6 head: counted by hand
    assert properties["params"] == info["params"] == 8856 + 4 * 80 + 272 + 102
    model = keras.models.load_model(model_dir / artifacts.KERAS_MODEL)
    # both start at zero: a training step moved them
    assert np.abs(model.get_layer("head_logits").get_weights()[1]).max() > 0
    assert np.abs(model.get_layer("stage1_down_bn").moving_mean.numpy()).max() > 0
    evaluated, folder = centroid_evaluation
    for key in ("centroid_precision", "centroid_recall", "centroid_f1"):
        assert 0.0 <= evaluated[key] <= 1.0
    assert "map_50" not in evaluated and set(evaluated["centroid_per_class"]) == set(CLASSES)
    header = (folder["evaluation"].path / "predictions.csv").read_text().splitlines()[0]
    assert header == "id,class,score,y,x,matched"
    inputs = {"examples": voc_examples[1]["examples"], "model": outputs["model"]}
    refused, _ = run_stage("evaluate", inputs, {"task": "detection", "min_centroid_f1": 1.0})
    assert not refused["blessed"] and "centroid_f1" in refused["reason"]
    with pytest.raises(ValueError, match=r"min_map_50.*min_centroid_f1"):
        run_stage("evaluate", inputs, {"task": "detection", "min_map_50": 0.5})


@pytest.mark.slow  # trains, evaluates, quantizes and reports through the stages
def test_variants_are_scored_by_centroid_f1_with_heatmap_metadata_and_reported(
        run_stage, voc_examples, voc_statistics, centroid_model, centroid_evaluation,
        centroid_tflite):
    from edgepipe.components import tflite_metadata

    properties, outputs = centroid_tflite
    folder = outputs["tflite"].path
    records = {record["name"]: record for record in artifacts.read_variants(folder)}
    assert records["float32"]["agreement"] == 1.0  # LiteRT finds Keras's centroids
    for record in records.values():
        assert 0.0 <= record["centroid_f1"] <= 1.0 and record["builtin_only"]
    assert "keras_centroid_f1" in properties and "map_50" not in records["int8"]
    assert properties["deployable"]["reason"]
    metadata, files = tflite_metadata.read((folder / "int8.tflite").read_bytes())
    assert files["labels.txt"].decode().split("\n") == ["background", *CLASSES]
    (output,) = metadata.subgraphMetadata[0].outputTensorMetadata
    assert output.name in ("heatmap", b"heatmap")
    (image,) = metadata.subgraphMetadata[0].inputTensorMetadata
    (normalization,) = image.processUnits  # raw pixels: the model normalises inside
    assert list(normalization.options.mean) == [0.0] and list(normalization.options.std) == [1.0]
    report, made = run_stage("report", {
        "examples": voc_examples[1]["examples"], "statistics": voc_statistics[1]["statistics"],
        "model": centroid_model[1]["model"], "evaluation": centroid_evaluation[1]["evaluation"],
        "tflite": outputs["tflite"]}, {})
    html = (made["report"].path / "report.html").read_text(encoding="utf-8")
    assert report["centroid_f1"] == pytest.approx(centroid_evaluation[0]["centroid_f1"])
    assert 'id="per-class-centroids"' in html and "fig-test-centroids" in html
    summary = artifacts.read_report_summary(made["report"].path)
    assert summary["task"] == "centroids" and set(summary["centroid_per_class"]) == set(CLASSES)
