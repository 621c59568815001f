"""A pushed regression model served over TF Serving's REST API: the values come back as
floats in the data's units, equal to what LiteRT computes from the same .tflite."""

from __future__ import annotations

import numpy as np

from edgepipe.components.shared import examples_io
from edgepipe.contracts import litert
from tests.regression_fixtures import TARGETS
from tests.serving.conftest import call, serve


def test_the_server_answers_values_equal_to_litert(tmp_path, run_stage, regression_examples,
                                                   regression_model, regression_evaluation,
                                                   regression_tflite):
    from ai_edge_litert.interpreter import Interpreter

    registry = tmp_path / "registry"
    inputs = {"examples": regression_examples[1], "model": regression_model[1],
              "evaluation": regression_evaluation[1], "tflite": regression_tflite[1]}
    pushed, _ = run_stage("push", inputs, {"registry": {"path": str(registry),
                                                        "model_name": "prices"}})
    version = registry / "prices" / "1"
    assert pushed["pushed"] and not (version / "labels.txt").exists()
    test = examples_io.load_numpy(regression_examples[1].path, "test")
    rows = np.stack(test["sequence"][:8]).astype(np.float32)  # [8, 1 step, 4 columns]
    interpreter = Interpreter(model_content=(version / "model.tflite").read_bytes())
    interpreter.allocate_tensors()
    expected = litert.invoke_each(interpreter, rows)
    with serve(registry) as (base, _):
        status, body = call(base, "POST", "/v1/models/prices:predict",
                            {"instances": rows.tolist()})
        assert status == 200, body
        assert body["targets"] == TARGETS and "classes" not in body
        np.testing.assert_allclose(np.array(body["predictions"]), expected, rtol=1e-6)
        # in the data's units: the price target is in the hundreds
        assert 200 < float(np.mean(np.array(body["predictions"])[:, 0])) < 600
        status, metadata = call(base, "GET", "/v1/models/prices/versions/1/metadata")
        assert status == 200 and metadata["edgepipe"]["task"] == "regression"
        signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert list(signature["outputs"]) == ["values"]
