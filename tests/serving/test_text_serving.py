"""A text model through the real push stage and the real HTTP server: raw strings and token
ids give the same answers as the interpreter in process; bad text requests say why."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.components.quantize import measure as litert_measure
from edgepipe.contracts import model_inputs
from tests.serving.conftest import call, serve


@pytest.fixture(scope="module")
def text_registry(tmp_path_factory, run_stage, text_examples_artifact, text_model_artifact,
                  text_evaluation_artifact, text_tflite_artifact):
    folder = tmp_path_factory.mktemp("text_registry")
    inputs = {"examples": text_examples_artifact, "model": text_model_artifact,
              "evaluation": text_evaluation_artifact, "tflite": text_tflite_artifact}
    properties, _ = run_stage("push", inputs, {"registry": {"path": str(folder), "model_name": "fortunes"}})
    assert properties["pushed"], properties
    return folder


@pytest.fixture(scope="module")
def text_server(text_registry, tmp_path_factory):
    log = tmp_path_factory.mktemp("text-serve-log") / "serve.log"
    with serve(text_registry, log_path=log) as (base, _):
        yield base


def test_raw_strings_and_token_ids_are_served_like_the_interpreter(
        text_server, text_registry, text_examples_artifact):
    version = text_registry / "fortunes" / "1"
    model_json = json.loads((version / "model.json").read_text())
    texts = [str(text) for text in
             examples_io.load_numpy(text_examples_artifact.path, "test")["text"][:4]]
    texts.append("A brand-new sentence with zxqv, an unknown <b>token</b>!")
    ids = model_inputs.prepare(model_json, texts)
    expected = litert_measure.run((version / "model.tflite").read_bytes(), ids,
                                  warmup=0).outputs

    status, answer = call(text_server, "POST", "/v1/models/fortunes:predict", {"instances": texts})
    assert status == 200, answer
    np.testing.assert_allclose(np.array(answer["predictions"], np.float32), expected, atol=1e-6)
    classes = model_json["class_names"]
    assert answer["classes"] == [classes[index] for index in expected.argmax(axis=1)]

    # The same examples as T token ids (row and named), and mixed with a raw string.
    status, by_ids = call(text_server, "POST", "/v1/models/fortunes:predict",
                          {"instances": ids.tolist()})
    assert status == 200 and by_ids["predictions"] == answer["predictions"]
    status, mixed = call(text_server, "POST", "/v1/models/fortunes:predict",
                         {"instances": [{"text": texts[0]}, ids[1].tolist()]})
    assert status == 200 and mixed["predictions"] == answer["predictions"][:2]

    status, metadata = call(text_server, "GET", "/v1/models/fortunes/metadata")
    inputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert inputs["text"]["dtype"] == "DT_INT32"
    assert metadata["edgepipe"]["text_input"]["tokenizer"]["length"] == 24


@pytest.mark.parametrize("instance, words", [
    ([1, 2, 3], "holds 3 token ids; expected a string (raw text) or 24 int token ids"),
    ([10**6] * 24, "token ids in [1000000, 1000000]"),
    ([[1, 2]] * 24, "expected a string (raw text) or 24 int token ids"),
    (3.5, "Example 0 is a float"),
])
def test_bad_text_instances_are_refused_saying_what_is_expected(text_server, instance, words):
    status, answer = call(text_server, "POST", "/v1/models/fortunes:predict",
                          {"instances": [instance]})
    assert status == 400 and words in answer["error"], answer
