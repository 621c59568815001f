"""Object detection: anchor targets that decode back to their boxes, COCO mAP, a converted
detector that ends in TFLite_Detection_PostProcess with the metadata MediaPipe's ObjectDetector
reads, and (slow) the real stages on the tiny VOC set (tests/detection_fixtures.py): a
SavedModel that returns boxes, COCO mAP in evaluate with its gate, the quantize stage's TFLite
whose boxes LiteRT computes as Keras does."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.contracts import artifacts, litert
from tests.detection_fixtures import CLASSES


def test_anchor_targets_decode_back_to_the_true_boxes():
    import tensorflow as tf

    from edgepipe.components.shared import detection
    from edgepipe.models import ssd

    anchors = ssd.anchors([(8, 8), (4, 4)], [[0.12, 0.2], [0.3, 0.45]], [1.0, 2.0, 0.5])
    boxes = np.array([[0.1, 0.1, 0.3, 0.25], [0.5, 0.4, 0.95, 0.8]], np.float32)
    targets = detection.encode(tf, anchors, tf.constant(boxes), tf.constant([3, 0])).numpy()
    classes = targets[:, 4]
    assert set(np.unique(classes)) <= {-1.0, 0.0, 1.0, 4.0}
    for label, box in ((4.0, boxes[0]), (1.0, boxes[1])):  # class + 1; 0 is background
        positives = np.flatnonzero(classes == label)
        assert len(positives) >= 1  # each box has at least its best anchor
        decoded = detection.decode(tf, anchors[positives], targets[positives, :4]).numpy()
        np.testing.assert_allclose(decoded, np.repeat(box[None], len(positives), 0), atol=1e-5)
    empty = detection.encode(tf, anchors, tf.zeros([0, 4]), tf.zeros([0], tf.int64)).numpy()
    assert (empty[:, 4] == 0).all()  # a background image: every anchor is background


@pytest.mark.slow  # trains a detector through the stages
def test_the_saved_model_returns_boxes_and_model_json_its_anchors(voc_examples,
                                                                    detection_model):
    from edgepipe.components.evaluate.stage import predict
    from edgepipe.components.shared import examples_io

    model_dir = detection_model[1]["model"].path
    info = artifacts.read_model_info(model_dir)
    assert info["task"] == "detection" and info["class_names"] == CLASSES
    assert info["detector"]["grids"] == [[8, 8], [4, 4]]  # 64x64 input: strides 8 and 16
    test = examples_io.load_numpy(voc_examples[1]["examples"].path, "test")
    found = predict(model_dir, test["image"], "detections")
    assert found["detections_boxes"].shape == (len(test["id"]), 20, 4)
    assert ((found["detections_count"] >= 0) & (found["detections_count"] <= 20)).all()


@pytest.mark.slow  # trains a detector through the stages
def test_evaluate_writes_coco_map_per_class_and_gates_on_map_50(run_stage, voc_examples,
                                                                 detection_model,
                                                                 detection_evaluation):
    properties, outputs = detection_evaluation
    assert 0.0 <= properties["map_50_95"] <= properties["map_50"] <= 1.0
    assert set(properties["ap_50_per_class"]) == set(CLASSES)
    metrics = artifacts.read_metrics(outputs["evaluation"].path)
    assert metrics["blessing"]["gates"][0]["reason"].startswith("map_50 ")
    header = (outputs["evaluation"].path / "predictions.csv").read_text().splitlines()[0]
    assert header == "id,class,score,ymin,xmin,ymax,xmax,matched"
    singled = artifacts.read_singled_out(outputs["evaluation"].path)
    assert set(singled) == {"worst_misses", "confident_false_boxes"}
    # an untrained detector cannot reach mAP@.5 0.99: the gate refuses it and says why
    refused, _ = run_stage("evaluate", {"examples": voc_examples[1]["examples"],
                                        "model": detection_model[1]["model"]},
                           {"task": "detection", "min_map_50": 0.99})
    assert not refused["blessed"] and "< threshold 0.990" in refused["reason"]


def test_map_is_one_for_the_true_boxes_and_drops_for_shifted_ones():
    from edgepipe.components.shared import box_metrics

    truths = [{"bbox": np.array([[0.1, 0.1, 0.5, 0.4]]), "label": np.array([1])},
              {"bbox": np.array([[0.2, 0.3, 0.9, 0.8], [0.0, 0.0, 0.2, 0.2]]),
               "label": np.array([0, 1])}]
    exact = [{"boxes": t["bbox"], "classes": t["label"], "scores": np.ones(len(t["label"]))}
             for t in truths]
    assert box_metrics.coco_map(truths, exact, ["a", "b"], (100, 100))["map_50"] == \
        pytest.approx(1.0)
    shifted = [{**found, "boxes": found["boxes"] + 0.05} for found in exact]
    result = box_metrics.coco_map(truths, shifted, ["a", "b"], (100, 100))
    assert result["map_50_95"] < result["map_50"] <= 1.0


@pytest.mark.slow  # trains a detector through the stages
def test_the_tflite_ends_in_the_postprocess_op_with_mediapipe_metadata(detection_model,
                                                                        detection_tflite):
    from edgepipe.components import tflite_metadata

    properties, outputs = detection_tflite
    folder = outputs["tflite"].path
    (record,) = artifacts.read_variants(folder)
    assert "TFLite_Detection_PostProcess" in record["ops"] and record["builtin_only"]
    assert record["agreement"] == 1.0  # float32 LiteRT finds Keras's boxes
    content = (folder / "float32.tflite").read_bytes()
    roles = litert.detection_roles(content)
    assert sorted(roles) == ["classes", "count", "locations", "scores"]
    metadata, files = tflite_metadata.read(content)
    assert files["labels.txt"].decode().split("\n") == CLASSES
    names = [tensor.name for tensor in metadata.subgraphMetadata[0].outputTensorMetadata]
    expected = {"locations": "location", "classes": "category", "scores": "score",
                "count": "number of detections"}
    assert [name.decode() if isinstance(name, bytes) else name for name in names] == \
        [expected[role] for role in roles]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    image = np.full((1, 64, 64, 3), 114.0, np.float32)
    found = litert.detections_by_role(litert.invoke_each(interpreter, image), roles)
    assert found["boxes"].shape == (1, 20, 4) and found["count"].shape == (1,)


@pytest.fixture(scope="module")
def tiny_detector():
    """(model.json fields, float32 .tflite) of an untrained 64x64 ssd, converted for real."""
    from edgepipe.components.quantize import detection_convert
    from edgepipe.components.shared import task_heads
    from edgepipe.models import ssd

    model = ssd.build([64, 64, 3], len(CLASSES), 100.0, 3000.0, filters=(8, 8, 16, 16))
    config = type("Config", (), {"model": "ssd", "model_options": {"filters": [8, 8, 16, 16]}})
    info = {"class_names": CLASSES, **task_heads.detector_spec(model, config)}
    content = detection_convert.convert(model, "float32", np.zeros((1, 64, 64, 3)), info)
    return info, content


def test_a_converted_detector_ends_in_the_postprocess_op_with_detector_metadata(tiny_detector):
    from edgepipe.components import tflite_metadata as tm
    from edgepipe.components.quantize import measure

    info, content = tiny_detector
    assert "TFLite_Detection_PostProcess" in measure.op_names(content)
    assert measure.builtin_only(measure.op_names(content))  # LiteRT has the op built in
    roles = litert.detection_roles(content)
    assert sorted(roles) == ["classes", "count", "locations", "scores"]
    described = tm.write(content, tm.ModelDescription(
        name="detector", inputs=[tm.ImageInput(mean=[0.0], std=[1.0])],
        outputs=[tm.DetectionOutput(role, labels=CLASSES) for role in roles]))
    metadata, files = tm.read(described)
    outputs = metadata.subgraphMetadata[0].outputTensorMetadata
    expected = {"locations": "location", "classes": "category", "scores": "score",
                "count": "number of detections"}
    assert [tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name
            for tensor in outputs] == [expected[role] for role in roles]
    boxes = outputs[roles.index("locations")].content.contentProperties
    assert list(boxes.index) == [1, 0, 3, 2]  # ymin, xmin, ymax, xmax as the op writes them
    assert files["labels.txt"].decode().split("\n") == CLASSES


def test_serving_answers_boxes_in_the_pixels_of_the_image_sent(tiny_detector):
    """An encoded 200x100 image is letterboxed to 64x64 as ingest does, run on LiteRT, and
    its boxes come back in the sent image's own pixels (the letterbox undone)."""
    import base64
    import io

    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    from edgepipe.contracts import letterbox
    from edgepipe.serving import answers
    from edgepipe.serving.requests import InputSpec, parse_predict

    info, content = tiny_detector
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 200, 3), np.uint8)).save(
        buffer, format="PNG")
    spec = InputSpec("image", (64, 64, 3), "uint8", False)
    parsed = parse_predict({"instances": [{"b64": base64.b64encode(buffer.getvalue()).decode()}]},
                           spec, 8)
    (where,) = parsed.letterboxes
    assert (where.original_height, where.original_width, where.scale) == (100, 200, 0.32)
    assert parsed.values[0].shape == (64, 64, 3)
    assert (parsed.values[0][:16] == letterbox.FILL).all()  # 32 rows of image, centred
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    outputs = litert.detections_by_role(
        litert.invoke_each(interpreter, np.stack(parsed.values).astype(np.float32)),
        litert.detection_roles(content))
    answer = answers.answer("detection", outputs, CLASSES, False, parsed.letterboxes)
    (found,) = answer["predictions"]
    count = int(outputs["count"][0])
    assert len(found) == count > 0
    expected = where.to_original(outputs["boxes"][0][:count])
    np.testing.assert_allclose([box["box"] for box in found], expected, atol=0.01)
    assert all(0 <= box["box"][0] <= box["box"][2] <= 200 and
               0 <= box["box"][1] <= box["box"][3] <= 100 for box in found)
    assert {box["class"] for box in found} <= set(CLASSES)


def test_the_centroid_detector_labels_box_centres_and_reads_them_back():
    import tensorflow as tf

    from edgepipe.components.shared import centroids

    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.6, 0.5, 0.9, 0.7]], np.float32)
    cells = centroids.cell_labels(tf, tf.constant(boxes), tf.constant([2, 0]), 8, 8).numpy()
    assert cells[1, 1] == 3 and cells[6, 4] == 1 and (cells > 0).sum() == 2
    heatmap = np.zeros((8, 8, 4), np.float32)
    heatmap[..., 0] = 1.0
    for row, column in ((1, 1), (1, 2)):  # two neighbouring cells: one centroid
        heatmap[row, column] = [0.1, 0.0, 0.0, 0.9]
    heatmap[6, 4] = [0.2, 0.8, 0.0, 0.0]
    heatmap[7, 0] = [0.1, 0.0, 0.9, 0.0]  # a false centroid far from any box
    truth = {"bbox": boxes, "label": np.array([2, 0])}
    assert len(centroids.centroids(heatmap)) == 3
    scores = centroids.scores([truth], heatmap[None])
    assert scores["centroid_recall"] == 1.0 and scores["centroid_precision"] == pytest.approx(2 / 3)


@pytest.mark.slow  # trains a detector through the stages
def test_the_report_shows_map_per_class_and_the_worst_misses(run_stage, voc_examples,
                                                              voc_statistics, detection_model,
                                                              detection_evaluation,
                                                              detection_tflite):
    properties, made = run_stage("report", {
        "examples": voc_examples[1]["examples"], "statistics": voc_statistics[1]["statistics"],
        "model": detection_model[1]["model"], "evaluation": detection_evaluation[1]["evaluation"],
        "tflite": detection_tflite[1]["tflite"]}, {})
    html = (made["report"].path / "report.html").read_text(encoding="utf-8")
    assert properties["map_50"] == pytest.approx(detection_evaluation[0]["map_50"])
    for anchor in ('id="box-statistics"', 'id="per-class-ap"', 'id="worst-misses-table"',
                   "true boxes</th>", "fig-pr-curves"):
        assert anchor in html
