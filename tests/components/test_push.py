"""The push stage and the registry it writes, on the session's real artifacts."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading

import numpy as np
import pytest

from edgepipe.components.push import stage as push
from edgepipe.pipeline.stage import Artifact, RegistrySettings
from edgepipe.contracts import checksums, registry, storage
from tests.conftest import CLASS_NAMES, REPO


@pytest.fixture(scope="module")
def push_inputs(examples_artifact, model_artifact, evaluation_artifact, tflite_artifact):
    return {"examples": examples_artifact, "model": model_artifact,
            "evaluation": evaluation_artifact, "tflite": tflite_artifact}


@pytest.fixture(scope="module")
def not_blessed(run_stage, examples_artifact, model_artifact) -> Artifact:
    _, artifacts = run_stage("evaluate", {"examples": examples_artifact, "model": model_artifact},
                             {"min_accuracy": 1.0})
    assert (artifacts["evaluation"].path / "NOT_BLESSED").is_file()
    return artifacts["evaluation"]


def copy_artifact(artifact: Artifact, target) -> Artifact:
    shutil.copytree(artifact.path, target)
    return Artifact.load(target)


def test_blessed_model_is_pushed_with_its_lineage(run_stage, push_inputs, tmp_path):
    properties, artifacts = run_stage("push", push_inputs, {"registry": {"path": str(tmp_path), "model_name": "tests"}})

    assert properties["pushed"] is True and properties["created"] is True
    assert properties["model_name"] == "tests" and properties["version"] == 1
    version = tmp_path / "tests" / "1"
    assert properties["path"] == str(version)
    names = {path.name for path in version.iterdir()}
    assert {"checksums.json", "labels.txt", "metadata.json", "model.json", "model.tflite",
            "model.tflite.json", "saved_model.pb", "variables"} <= names
    assert "saved_model" not in names
    # The SHA-256 of every file but metadata.json, recorded before the commit marker.
    recorded_files = json.loads((version / "checksums.json").read_text())["files"]
    assert recorded_files["model.tflite"]["sha256"] == hashlib.sha256((version / "model.tflite").read_bytes()).hexdigest()
    assert "saved_model.pb" in recorded_files and "metadata.json" not in recorded_files
    assert checksums.verify(version) == []
    # The version folder is a SavedModel directory: what TF Serving and KServe load.
    import tensorflow as tf

    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    image = np.zeros((1, 28, 28, 1), np.uint8)
    assert serve(image=tf.constant(image))["probabilities"].shape == (1, len(CLASS_NAMES))
    assert registry.saved_model_dir(version) == str(version)
    # The variant quantize chose, with its sidecar description.
    chosen = json.loads((push_inputs["tflite"].path / "deployable.json").read_text())
    assert properties["variant"] == chosen["variant"]
    tflite = push_inputs["tflite"].path / chosen["path"]
    assert (version / "model.tflite").read_bytes() == tflite.read_bytes()
    assert (version / "model.tflite.json").read_text() == tflite.with_suffix(".json").read_text()
    assert (version / "labels.txt").read_text().splitlines() == list(CLASS_NAMES)

    metadata = registry.read_metadata(tmp_path, "tests", 1)
    evaluation = json.loads((push_inputs["evaluation"].path / "metrics.json").read_text())
    assert metadata["version"] == 1 and metadata["pipeline"] == "tests"
    assert metadata["run_id"].startswith("test-run-")
    assert metadata["examples_key"] == push_inputs["examples"].key
    assert metadata["model_key"] == push_inputs["model"].key
    assert metadata["metrics"]["accuracy"] == evaluation["accuracy"]
    assert metadata["variant"] == chosen["variant"] and metadata["tflite"]["name"] == chosen["variant"]
    assert metadata["deployable"]["reason"] == chosen["reason"]
    assert metadata["class_names"] == list(CLASS_NAMES)
    assert metadata["input"] == {"name": "image", "shape": [28, 28, 1], "dtype": "uint8"}
    assert metadata["pushed"].endswith("+00:00")
    assert registry.latest_version(tmp_path, "tests") == 1
    assert registry.model_names(tmp_path) == ["tests"]
    recorded = json.loads((artifacts["pushed"].path / "pushed.json").read_text())
    assert recorded["version"] == 1 and recorded["registry"] == str(tmp_path)


def test_pushing_the_same_model_again_adds_no_version(run_stage, push_inputs, tmp_path):
    run_stage("push", push_inputs, {"registry": {"path": str(tmp_path), "model_name": "fashion"}})
    properties, _ = run_stage("push", push_inputs, {"registry": {"path": str(tmp_path), "model_name": "fashion"}})
    assert properties["pushed"] is True and properties["created"] is False
    assert properties["version"] == 1 and "already in the registry" in properties["reason"]
    assert registry.list_versions(tmp_path, "fashion") == [1]
    assert sorted(path.name for path in (tmp_path / "fashion").iterdir()) == [".push.lock", "1"]


def test_not_blessed_model_is_refused_and_the_registry_is_untouched(
        run_stage, push_inputs, not_blessed, tmp_path):
    run_stage("push", push_inputs, {"registry": {"path": str(tmp_path), "model_name": "tests"}})
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    reason = (not_blessed.path / "NOT_BLESSED").read_text().splitlines()[0]

    properties, artifacts = run_stage("push", {**push_inputs, "evaluation": not_blessed},
                                      {"registry": {"path": str(tmp_path), "model_name": "tests"}})

    assert properties["pushed"] is False
    assert properties["reason"] == f"model not blessed, push refused: {reason}"
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before
    assert json.loads((artifacts["pushed"].path / "pushed.json").read_text())["pushed"] is False


def test_no_registry_configured_pushes_nothing(run_stage, push_inputs):
    properties, _ = run_stage("push", push_inputs, {})
    assert properties == {"pushed": False,
                          "reason": "no registry configured: add a [registry] section",
                          "registry": ""}


def test_the_chosen_variant_and_its_sidecar_are_pushed(run_stage, push_inputs, tmp_path):
    tflite = copy_artifact(push_inputs["tflite"], tmp_path / "tflite")
    expected = "float32"  # whatever quantize chose: push reads deployable.json, nothing else
    (tflite.path / "deployable.json").write_text(json.dumps(
        {"variant": expected, "path": "float32.tflite", "reason": "test"}))
    (tflite.path / f"{expected}.json").write_text('{"note": "sidecar"}')
    registry_dir = tmp_path / "registry"
    properties, _ = run_stage("push", {**push_inputs, "tflite": tflite}, {"registry": {"path": str(registry_dir), "model_name": "tests"}})
    version = registry_dir / "tests" / "1"
    assert properties["variant"] == expected
    assert (version / "model.tflite").read_bytes() == (tflite.path / f"{expected}.tflite").read_bytes()
    assert json.loads((version / "model.tflite.json").read_text()) == {"note": "sidecar"}


def test_deployable_json_naming_a_missing_file_says_so(run_stage, push_inputs, tmp_path):
    tflite = copy_artifact(push_inputs["tflite"], tmp_path / "tflite")
    (tflite.path / "deployable.json").write_text(json.dumps({"variant": "int4", "path": "int4.tflite"}))
    with pytest.raises(ValueError, match="int4.tflite, which does not exist"):
        run_stage("push", {**push_inputs, "tflite": tflite}, {"registry": {"path": str(tmp_path / "r"), "model_name": "tests"}})
    assert not (tmp_path / "r" / "tests").exists() or registry.list_versions(tmp_path / "r", "tests") == []


def test_a_missing_deployable_choice_is_an_error_not_a_guess(run_stage, push_inputs, tmp_path):
    tflite = copy_artifact(push_inputs["tflite"], tmp_path / "tflite")
    (tflite.path / "deployable.json").unlink()
    with pytest.raises(ValueError, match="deployable.json is missing.*re-run the quantize stage"):
        run_stage("push", {**push_inputs, "tflite": tflite},
                  {"registry": {"path": str(tmp_path / "r"), "model_name": "tests"}})


def test_registry_is_relative_to_the_config_file_and_names_are_checked(tmp_path):
    settings = RegistrySettings.model_validate({"path": "../artifacts/registry"},
                                               context={"base_dir": REPO / "configs"})
    assert settings.path == str(REPO / "artifacts" / "registry")
    assert RegistrySettings(path="gs://bucket/registry").path == "gs://bucket/registry"
    with pytest.raises(ValueError, match="model_name"):
        RegistrySettings(path=str(tmp_path), model_name="../elsewhere")


def write_files(folder):
    """A version's payload, big enough that a half-written copy would be noticed."""
    (folder / "model.tflite").write_bytes(b"\0" * 100_000)


def test_concurrent_pushes_get_distinct_versions(tmp_path):
    results = []

    def push_one(index: int) -> None:
        results.append(registry.publish(tmp_path, "m", write_files, {"model_key": f"key-{index}"}))

    threads = [threading.Thread(target=push_one, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result["version"] for result in results) == list(range(1, 9))
    assert registry.list_versions(tmp_path, "m") == list(range(1, 9))
    keys = {registry.read_metadata(tmp_path, "m", version)["model_key"] for version in range(1, 9)}
    assert keys == {f"key-{index}" for index in range(8)}
    assert not [path for path in (tmp_path / "m").iterdir() if path.name.startswith(".draft")]


def test_a_version_being_written_is_invisible_until_complete(tmp_path):
    writing, release = threading.Event(), threading.Event()

    def slow_fill(folder):
        write_files(folder)
        writing.set()
        release.wait()

    thread = threading.Thread(target=registry.publish, args=(tmp_path, "m", slow_fill, {"model_key": "k"}))
    thread.start()
    writing.wait()
    assert registry.list_versions(tmp_path, "m") == [] and registry.latest_version(tmp_path, "m") is None
    assert registry.model_names(tmp_path) == []
    release.set()
    thread.join()
    assert registry.list_versions(tmp_path, "m") == [1]
    assert (tmp_path / "m" / "1" / "model.tflite").stat().st_size == 100_000


def test_read_metadata_of_a_missing_version_names_what_exists(tmp_path):
    registry.publish(tmp_path, "m", write_files, {"model_key": "k"})
    with pytest.raises(FileNotFoundError, match=r"no complete version 7 .*\(versions: \[1\]\)"):
        registry.read_metadata(tmp_path, "m", 7)


def test_object_store_registry_through_the_file_layer(run_stage, push_inputs):
    # memory:// is fsspec's in-process object store: the same code path as gs:// and s3://.
    uri = "memory://registry-test"
    properties, _ = run_stage("push", push_inputs, {"registry": {"path": uri, "model_name": "tests"}})
    assert properties["pushed"] is True and properties["path"] == f"{uri}/tests/1"
    assert registry.list_versions(uri, "tests") == [1]
    assert registry.read_metadata(uri, "tests", 1)["model_key"] == push_inputs["model"].key
    assert "model.tflite" in json.loads(storage.read_text(f"{uri}/tests/1/checksums.json"))["files"]
    again, _ = run_stage("push", push_inputs, {"registry": {"path": uri, "model_name": "tests"}})
    assert again["created"] is False and registry.list_versions(uri, "tests") == [1]


def test_the_pushed_version_a_command_runs_is_named_or_the_fix_is_said(tmp_path):
    import types

    config = types.SimpleNamespace(path=tmp_path / "p.toml", registry=None)
    with pytest.raises(ValueError, match=r"p\.toml: no \[registry\] section"):
        registry.pushed_version(config)
    config.registry = RegistrySettings(path=str(tmp_path / "registry"), model_name="m")
    with pytest.raises(ValueError, match=r"no pushed version of 'm'; run `edgepipe run .*p\.toml"):
        registry.pushed_version(config)
    for _ in range(2):
        registry.publish(config.registry.path, "m", write_files, {"model_key": f"k{_}"})
    assert registry.pushed_version(config) == (tmp_path / "registry" / "m" / "2", 2)
    assert registry.pushed_version(config, 1) == (tmp_path / "registry" / "m" / "1", 1)
