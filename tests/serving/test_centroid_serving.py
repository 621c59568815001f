"""A pushed centroid detector (`[train] model = "fomo"`) served over TF Serving's REST API: an
encoded image of another size is letterboxed as ingest does, and the centroids come back as
the pushed .tflite's heat map read out on LiteRT, mapped into the pixels of the image sent.
The fixture's detector has trained for one epoch and may find no centroid: the mapping itself
is checked on a model that finds one (tests/components/test_centroids.py)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from edgepipe.contracts import centroids, letterbox, litert
from tests.detection_fixtures import CLASSES
from tests.serving.conftest import call, serve


@pytest.mark.slow  # trains, evaluates and quantizes a centroid detector, then serves it
def test_the_server_answers_centroids_in_the_pixels_of_the_image_sent(
        tmp_path, run_stage, voc_examples, centroid_model, centroid_evaluation, centroid_tflite):
    from ai_edge_litert.interpreter import Interpreter

    registry = tmp_path / "registry"
    inputs = {"examples": voc_examples[1]["examples"], "model": centroid_model[1]["model"],
              "evaluation": centroid_evaluation[1]["evaluation"],
              "tflite": centroid_tflite[1]["tflite"]}
    pushed, _ = run_stage("push", inputs, {"registry": {"path": str(registry),
                                                        "model_name": "spots"}})
    assert pushed["pushed"]
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 255, (90, 150, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    pixels, where = letterbox.apply(Image.fromarray(photo), 64, 64)
    interpreter = Interpreter(model_content=(registry / "spots" / "1" / "model.tflite")
                              .read_bytes())
    interpreter.allocate_tensors()
    (heatmap,) = litert.invoke_each(interpreter, pixels[None].astype(np.float32))
    found = sorted(centroids.centroids(heatmap), key=lambda item: -item[3])
    expected = centroids.in_pixels(found, where)
    with serve(registry) as (base, _):
        status, body = call(base, "POST", "/v1/models/spots:predict", {"instances": [
            {"b64": base64.b64encode(buffer.getvalue()).decode()}]})
        assert status == 200, body
        (answer,) = body["predictions"]
        assert [item["class"] for item in answer] == [CLASSES[item[2]] for item in found]
        np.testing.assert_allclose(np.reshape([[item["x"], item["y"]] for item in answer],
                                              (-1, 2)), np.reshape(expected, (-1, 2)), atol=0.01)
        assert all(0 <= item["x"] <= 150 and 0 <= item["y"] <= 90 for item in answer)
        status, metadata = call(base, "GET", "/v1/models/spots/versions/1/metadata")
        assert status == 200 and metadata["edgepipe"]["task"] == "centroids"
        signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert [int(dim["size"]) for dim in signature["outputs"]["heatmap"]["tensor_shape"][
            "dim"]] == [-1, 8, 8, 1 + len(CLASSES)]
