"""End to end: the real `edgepipe serve` process on a registry the push stage wrote, called
over loopback HTTP exactly as a TensorFlow Serving REST client would."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.components.quantize import measure as litert_measure
from edgepipe.contracts import registry
from tests.conftest import CLASS_NAMES, REPO
from tests.serving.conftest import STARTUP_LIMIT_SECONDS, call, serve

LIMITS = ("--max-instances", "8", "--max-body-bytes", "100000", "--workers", "2")


@pytest.fixture(scope="module")
def test_images(examples_artifact) -> np.ndarray:
    return examples_io.load_numpy(examples_artifact.path, "test")["image"][:8]


@pytest.fixture(scope="module")
def server(pushed_registry, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with serve(pushed_registry, *LIMITS, log_path=log) as (base, process):
        yield base, process


def interpreter_probabilities(registry_dir, images: np.ndarray) -> np.ndarray:
    content = (registry_dir / "tests" / "1" / "model.tflite").read_bytes()
    return litert_measure.run(content, images.astype(np.float32), warmup=0).outputs


def test_predictions_equal_the_litert_interpreter_in_process(server, pushed_registry, test_images):
    base, _ = server
    expected = interpreter_probabilities(pushed_registry, test_images)

    status, answer = call(base, "POST", "/v1/models/tests:predict", {"instances": test_images.tolist()})
    assert status == 200
    np.testing.assert_allclose(np.array(answer["predictions"], np.float32), expected, rtol=0, atol=1e-7)
    assert answer["classes"] == [CLASS_NAMES[index] for index in expected.argmax(axis=1)]
    np.testing.assert_allclose(answer["confidences"], expected.max(axis=1), atol=1e-7)
    assert answer["model_spec"] == {"name": "tests", "version": "1", "signature_name": "serving_default"}

    # Columnar format answers "outputs"; named inputs and an explicit version give the same.
    status, columnar = call(base, "POST", "/v1/models/tests/versions/1:predict",
                            {"signature_name": "serving_default", "inputs": {"image": test_images[:3].tolist()}})
    assert status == 200 and "predictions" not in columnar
    np.testing.assert_allclose(np.array(columnar["outputs"], np.float32), expected[:3], atol=1e-7)
    status, named = call(base, "POST", "/v1/models/tests:predict",
                         {"instances": [{"image": image.tolist()} for image in test_images[:2]]})
    assert status == 200 and named["predictions"] == answer["predictions"][:2]


def test_status_and_metadata_follow_tf_serving(server):
    base, _ = server
    assert call(base, "GET", "/v1/models/tests") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    assert call(base, "GET", "/v1/models/tests/versions/1")[1]["model_version_status"][0]["version"] == "1"
    status, metadata = call(base, "GET", "/v1/models/tests/metadata")
    assert status == 200 and metadata["model_spec"]["version"] == "1"
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    image = signature["inputs"]["image"]
    assert image["dtype"] == "DT_UINT8"
    assert [dim["size"] for dim in image["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]
    assert [dim["size"] for dim in signature["outputs"]["probabilities"]["tensor_shape"]["dim"]] == ["-1", "10"]
    lineage = metadata["edgepipe"]
    assert lineage["class_names"] == list(CLASS_NAMES) and lineage["variant"] == lineage["tflite"]["name"]
    assert lineage["runtime"] == "litert" and lineage["model_key"]


IMAGE = [[[0]] * 28] * 28
BAD_REQUESTS = [
    # (method, path, body, status, words the error must contain)
    ("POST", "/v1/models/tests:predict", b"{instances: [", 400, "not valid JSON"),
    ("POST", "/v1/models/tests:predict", b"", 400, "not valid JSON"),
    ("POST", "/v1/models/tests:predict", b"\xff\xfe", 400, "not UTF-8"),
    ("POST", "/v1/models/tests:predict", [IMAGE], 400, "expected an object"),
    ("POST", "/v1/models/tests:predict", {}, 400, "exactly one of"),
    ("POST", "/v1/models/tests:predict", {"instances": [IMAGE], "inputs": [IMAGE]}, 400, "exactly one of"),
    ("POST", "/v1/models/tests:predict", {"instances": []}, 400, "no examples"),
    ("POST", "/v1/models/tests:predict", {"instances": IMAGE[0][:3]}, 400, "shape [1]; expected uint8 [28, 28, 1]"),
    ("POST", "/v1/models/tests:predict", {"instances": [[[0] * 28] * 28]}, 400, "shape [28, 28]; expected uint8 [28, 28, 1]"),
    ("POST", "/v1/models/tests:predict", {"instances": [[[[0], [0, 1]]]]}, 400, "ragged"),
    ("POST", "/v1/models/tests:predict", {"instances": [[[["a"]] * 28] * 28]}, 400, "string values"),
    ("POST", "/v1/models/tests:predict", {"instances": [[[[0.5]] * 28] * 28]}, 400, "fractional"),
    ("POST", "/v1/models/tests:predict", {"instances": [[[[300]] * 28] * 28]}, 400, "0..255"),
    ("POST", "/v1/models/tests:predict", {"instances": [{"pixels": IMAGE}]}, 400, "one input, 'image'"),
    ("POST", "/v1/models/tests:predict", {"signature_name": "other", "instances": [IMAGE]}, 400, "serving_default"),
    ("POST", "/v1/models/tests:predict", {"instances": [IMAGE] * 9}, 413, "at most 8"),
    ("POST", "/v1/models/tests:predict", {"instances": [IMAGE] * 8, "pad": "x" * 100_000}, 413, "at most 100000"),
    ("POST", "/v1/models/nothing:predict", {"instances": [IMAGE]}, 404, "Servable not found"),
    ("POST", "/v1/models/tests/versions/9:predict", {"instances": [IMAGE]}, 404, "versions of 'tests' served: [1]"),
    ("POST", "/v1/models/tests/versions/one:predict", {"instances": [IMAGE]}, 400, "not a version number"),
    ("POST", "/v1/models/tests:classify", {"examples": []}, 400, "answers :predict"),
    ("GET", "/v1/models/tests:predict", None, 405, "use POST"),
    ("POST", "/v1/models/tests", {}, 405, "use GET"),
    ("DELETE", "/v1/models/tests", None, 405, "use GET"),
    ("GET", "/v1/models/nothing", None, 404, "versions of model nothing"),
    ("GET", "/v2/anything", None, 404, "expected /v1/models/<name>"),
]


@pytest.mark.parametrize("method, path, body, status, words", BAD_REQUESTS,
                         ids=[f"{row[3]}-{row[4]}" for row in BAD_REQUESTS])
def test_bad_request_gets_its_status_and_says_what_was_expected(server, method, path, body, status, words):
    base, process = server
    answer_status, answer = call(base, method, path, body)
    assert answer_status == status and words in answer["error"], answer
    assert process.poll() is None


def raw_exchange(base: str, request: bytes) -> tuple[int, dict]:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(request)
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_protocol_level_errors_are_json_too(server):
    base, process = server
    status, answer = raw_exchange(base, b"POST /v1/models/tests:predict HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 411 and "Content-Length" in answer["error"]
    status, answer = raw_exchange(base, b"garbage\r\n\r\n")
    assert status == 400 and answer["error"]
    assert process.poll() is None and call(base, "GET", "/healthz") == (200, {"status": "alive"})


def metric_samples(text: str) -> dict[tuple, float]:
    """(name, frozenset of label pairs) -> value of every sample of a /metrics answer (the
    exposition format does not fix the order of labels)."""
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r'(\w+)(?:\{(.*)\})? (\S+)', line)
        if match and not line.startswith("#"):
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
            samples[(match[1], labels)] = float(match[3])
    return samples


def test_metrics_count_requests_and_errors_by_model_and_version(server, test_images):
    base, _ = server
    call(base, "POST", "/v1/models/tests:predict", {"instances": test_images[:2].tolist()})
    call(base, "POST", "/v1/models/tests:predict", {"instances": [[[0]]]})
    status, text = call(base, "GET", "/metrics")
    assert status == 200
    samples = metric_samples(text)

    def value(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in samples, f"{key} not in /metrics:\n{text}"
        return samples[key]

    series = {"model": "tests", "version": "1", "endpoint": "predict"}
    assert value("edgepipe_requests_total", code="200", **series) >= 1
    assert value("edgepipe_request_errors_total", code="400", **series) >= 1
    assert value("edgepipe_request_duration_seconds_count", **series) >= 2
    assert value("edgepipe_predict_examples_total", model="tests", version="1") >= 2
    assert value("edgepipe_model_version", model="tests") == 1


def test_api_key_is_required_when_configured(pushed_registry, test_images):
    key = "s3cret-key-of-24-chars.."  # keys shorter than 16 characters are a startup error
    with serve(pushed_registry, env={"EDGEPIPE_API_KEY": key}) as (base, _):
        body = {"instances": test_images[:1].tolist()}
        status, answer = call(base, "POST", "/v1/models/tests:predict", body)
        assert status == 401 and "API key" in answer["error"]
        assert call(base, "POST", "/v1/models/tests:predict", body, {"Authorization": "Bearer wrong"})[0] == 401
        assert call(base, "POST", "/v1/models/tests:predict", body, {"Authorization": f"Bearer {key}"})[0] == 200
        assert call(base, "GET", "/v1/models/tests", headers={"X-API-Key": key})[0] == 200
        assert call(base, "GET", "/healthz")[0] == 200  # probes need no key


def copy_version(source, fill_extra=None):
    def fill(folder):
        for path in source.iterdir():
            if path.name != "metadata.json":
                (shutil.copytree if path.is_dir() else shutil.copy2)(path, folder / path.name)
        if fill_extra:
            fill_extra(folder)
    return fill


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def test_hot_reload_under_load_fails_no_request(pushed_registry, tmp_path, test_images):
    live = tmp_path / "registry"
    shutil.copytree(pushed_registry, live)
    first = live / "tests" / "1"
    metadata = registry.read_metadata(live, "tests", 1)
    body = {"instances": test_images[:2].tolist()}
    stop = threading.Event()
    answers: dict[int, list] = {}

    def client(number: int) -> None:
        seen = answers.setdefault(number, [])
        while not stop.is_set():
            status, answer = call(base, "POST", "/v1/models/tests:predict", body)
            seen.append((status, answer.get("model_spec", {}).get("version"), answer.get("error")))

    with serve(live, "--poll-seconds", "0.1", "--workers", "2") as (base, process):
        clients = [threading.Thread(target=client, args=(number,)) for number in range(4)]
        for thread in clients:
            thread.start()
        wait_for(lambda: sum(map(len, answers.values())) >= 20, "requests answered by version 1")
        registry.publish(live, "tests", copy_version(first), {**metadata, "model_key": "retrained"})
        wait_for(lambda: all(seen and seen[-1][1] == "2" for seen in answers.values()), "version 2 serving")

        # A broken version is loaded beside the served one, fails its check, and never serves.
        def corrupt(folder):
            (folder / "model.tflite").write_bytes(b"not a flatbuffer")
        registry.publish(live, "tests", copy_version(first, corrupt), {**metadata, "model_key": "broken"})
        wait_for(lambda: call(base, "GET", "/v1/models/tests")[1]["model_version_status"][0]["state"] == "END",
                 "version 3 rejected")
        count = sum(map(len, answers.values()))
        wait_for(lambda: sum(map(len, answers.values())) >= count + 20, "requests after the rejection")
        stop.set()
        for thread in clients:
            thread.join()
        statuses = call(base, "GET", "/v1/models/tests")[1]["model_version_status"]
        assert process.poll() is None

    every = [answer for seen in answers.values() for answer in seen]
    assert [answer for answer in every if answer[0] != 200] == []
    assert {answer[1] for answer in every} == {"1", "2"}
    for seen in answers.values():  # each client moved from 1 to 2 once, never back
        versions = [answer[1] for answer in seen]
        assert versions == sorted(versions) and versions[-1] == "2"
    by_version = {entry["version"]: entry for entry in statuses}
    assert by_version["2"]["state"] == "AVAILABLE"
    assert by_version["1"]["state"] == "END" and by_version["1"]["status"]["error_code"] == "OK"
    assert by_version["3"]["state"] == "END" and by_version["3"]["status"]["error_code"] != "OK"
    assert by_version["3"]["status"]["error_message"]


def test_savedmodel_runtime_serves_the_savedmodel(pushed_registry, test_images):
    import tensorflow as tf

    saved_model = tf.saved_model.load(str(pushed_registry / "tests" / "1"))
    expected = saved_model.signatures["serving_default"](image=tf.constant(test_images[:4]))["probabilities"].numpy()
    with serve(pushed_registry, "--runtime", "saved_model") as (base, _):
        status, answer = call(base, "POST", "/v1/models/tests:predict", {"instances": test_images[:4].tolist()})
        assert status == 200
        assert call(base, "GET", "/v1/models/tests/metadata")[1]["edgepipe"]["runtime"] == "saved_model"
    np.testing.assert_allclose(answer["predictions"], expected, atol=1e-5)


def test_litert_serving_never_imports_tensorflow(pushed_registry):
    script = (
        "import sys, pathlib\n"
        "from edgepipe import cli\n"
        "from edgepipe.serving import runtime, server\n"
        "from edgepipe.contracts import registry\n"
        f"model = runtime.load('tests', 1, pathlib.Path({str(pushed_registry / 'tests' / '1')!r}), 'litert', 1)\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
