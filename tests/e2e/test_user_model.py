"""The documented example of your own model (configs/examples/my_model.py and .toml), run end
to end with `edgepipe run` on the tiny sample, then served by `edgepipe serve`."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts
from tests.conftest import REPO
from tests.e2e.conftest import run_cli
from tests.serving.conftest import call, serve

EXAMPLES = REPO / "configs" / "examples"


@pytest.fixture(scope="module")
def user_model_run(tiny_fashion_mnist, tmp_path_factory):
    """The example config beside a copy of the example model, on the tiny sample."""
    folder = tmp_path_factory.mktemp("user_model")
    shutil.copy(EXAMPLES / "my_model.py", folder / "my_model.py")
    text = (EXAMPLES / "my_model.toml").read_text()
    for path in tiny_fashion_mnist.values():
        name = pathlib.Path(path).name
        text = text.replace(f'"../../data/fashion_mnist/{name}"', f'"{path}"')
    text = text.replace('root = "../../artifacts/my_model"', f'root = "{folder / "root"}"')
    text = text.replace('path = "../../artifacts/registry"', f'path = "{folder / "registry"}"')
    text = text.replace("epochs = 8", "epochs = 1").replace("min_accuracy = 0.75",
                                                            "min_accuracy = 0.0")
    text = text.replace("representative_examples = 200", "representative_examples = 20")
    config = folder / "my_model.toml"
    config.write_text(text)
    return folder, run_cli("run", str(config))


def test_the_example_user_model_runs_every_stage(user_model_run):
    folder, summary = user_model_run
    assert summary["status"] == "succeeded"
    metrics = {stage["name"]: stage["metrics"] for stage in summary["stages"]}
    assert {stage["status"] for stage in summary["stages"]} == {"ran"}
    model_dir = pathlib.Path(summary["stages"][2]["artifacts"]["model"])
    info = json.loads((model_dir / "model.json").read_text())
    assert info["model"] == f"{folder / 'my_model.py'}:build"
    assert info["model_options"] == {"width": 32, "dropout": 0.25}
    tflite = pathlib.Path(summary["stages"][4]["artifacts"]["tflite"])
    variants = {variant["name"]: variant for variant in artifacts.read_variants(tflite)}
    assert set(variants) == {"float32", "dynamic_range", "int8", "qat_int8"}
    assert all(variant["builtin_only"] for variant in variants.values())  # QAT ran too
    assert metrics["push"]["pushed"] and metrics["push"]["version"] == 1
    report = pathlib.Path(summary["stages"][5]["artifacts"]["report"]) / "report.html"
    assert "my_model" in report.read_text()


def test_the_pushed_user_model_is_served(user_model_run, examples_artifact):
    folder, summary = user_model_run
    images = examples_io.load_numpy(examples_artifact.path, "test")["image"][:4]
    with serve(folder / "registry") as (base, _):
        status, answer = call(base, "POST", "/v1/models/my_model:predict",
                              {"instances": images.tolist()})
    assert status == 200, answer
    probabilities = np.asarray(answer["predictions"])
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)


def test_editing_the_model_file_reruns_train_and_after_only(user_model_run):
    folder, _ = user_model_run
    source = folder / "my_model.py"
    source.write_text(source.read_text().replace("dropout=0.25", "dropout=0.3"))
    config = folder / "my_model.toml"
    from edgepipe import api

    statuses = {entry["stage"]: entry["record"] is not None
                for entry in api.status(api.load_config(config))}
    assert statuses == {"ingest": True, "statistics": True, "train": False, "evaluate": False,
                        "quantize": False, "report": False, "push": False}
