"""Request checking against the input spec of each input kind (no server needed)."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.serving.metrics import Metrics
from edgepipe.serving.requests import InputSpec, RequestError, parse_body, parse_predict

SEQUENCES = InputSpec.from_model_json({"input_feature": "sequence", "input_shape": [29, 12],
                                       "input_dtype": "float32", "padding": "pre", "class_names": []})
IMAGES = InputSpec.from_model_json({"input_shape": [28, 28, 1], "input_dtype": "uint8"})


def refused(request, spec=SEQUENCES, max_instances=4) -> RequestError:
    with pytest.raises(RequestError) as caught:
        parse_predict(request, spec, max_instances)
    return caught.value


def test_sequences_of_any_length_are_accepted_row_and_column():
    short, long = np.ones((7, 12)).tolist(), np.ones((40, 12)).tolist()
    parsed = parse_predict({"instances": [short, long]}, SEQUENCES, 4)
    assert [value.shape for value in parsed.values] == [(7, 12), (40, 12)] and not parsed.columnar
    assert parsed.values[0].dtype == np.float32
    parsed = parse_predict({"inputs": {"sequence": [short]}}, SEQUENCES, 4)
    assert parsed.columnar and parsed.values[0].shape == (7, 12)


def test_sequence_problems_say_what_was_expected():
    assert SEQUENCES.describe() == "float32 [steps, 12]"
    error = refused({"instances": [np.ones((7, 11)).tolist()]})
    assert error.status == 400 and "shape [7, 11]; expected float32 [steps, 12]" in error.message
    error = refused({"instances": [[[float("nan")] * 12]]})
    assert "NaN or infinite" in error.message
    error = refused({"instances": [[[True] * 12]]})
    assert "boolean values" in error.message
    error = refused({"instances": [[[0.0] * 12]] * 5})
    assert error.status == 413 and "at most 4" in error.message
    error = refused({"instances": [{"image": [[0.0] * 12]}]})
    assert "one input, 'sequence'" in error.message


def test_uint8_images_accept_integral_floats_only():
    parsed = parse_predict({"instances": [np.full((28, 28, 1), 255.0).tolist()]}, IMAGES, 1)
    assert parsed.values[0].dtype == np.uint8 and parsed.values[0].max() == 255
    assert "fractional" in refused({"instances": [np.full((28, 28, 1), 1.5).tolist()]}, IMAGES).message
    assert "0..255" in refused({"instances": [np.full((28, 28, 1), -1).tolist()]}, IMAGES).message


def test_bodies_that_are_not_json_objects():
    assert parse_body(b'{"instances": []}') == {"instances": []}
    for body, words in ((b"[1]", "JSON list"), (b"{", "not valid JSON"), (b"\xff", "not UTF-8")):
        with pytest.raises(RequestError, match=words):
            parse_body(body)


def test_metrics_histogram_is_cumulative_and_counts_slow_requests_in_inf():
    metrics = Metrics(lambda: {"m": 1})
    metrics.observe("m", "1", "predict", 200, 0.0004, examples=3)
    metrics.observe("m", "1", "predict", 200, 0.003)
    metrics.observe("m", "1", "predict", 400, 60.0)
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))

    def value(name: str, **labels: str) -> float:
        key = name + "{" + ",".join(f'{label}="{value}"' for label, value in sorted(labels.items())) + "}"
        return float(samples[key])

    series = {"model": "m", "version": "1", "endpoint": "predict"}
    bucket = "edgepipe_request_duration_seconds_bucket"
    assert value(bucket, le="0.0005", **series) == 1 and value(bucket, le="0.005", **series) == 2
    assert value(bucket, le="5.0", **series) == 2 and value(bucket, le="+Inf", **series) == 3
    assert value("edgepipe_request_errors_total", code="400", **series) == 1
    assert value("edgepipe_predict_examples_total", model="m", version="1") == 3
    assert value("edgepipe_model_version", model="m") == 1
    # The client library's standard collectors come with it.
    assert "process_resident_memory_bytes" in samples and "python_info" in text
