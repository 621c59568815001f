"""`edgepipe compile`: the spec's tasks, resources and images, the Vertex AI custom job that
runs train on several replicas, and what a task checks before it runs its stage."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from edgepipe import cli
from edgepipe.pipeline import dag, kfp_task
from tests.conftest import REPO

QUICKSTART = REPO / "configs" / "quickstart.toml"
IMAGE = "europe-west4-docker.pkg.dev/p/edgepipe/edgepipe:0.1.0"


def compiled(tmp_path, *arguments: str) -> dict:
    output = tmp_path / "pipeline.yaml"
    assert cli.main(["compile", str(QUICKSTART), "-o", str(output), "--image", IMAGE,
                     *arguments]) == 0
    return yaml.safe_load(output.read_text())


def executor(spec: dict, task: str) -> dict:
    component = spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]
    return spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]


def settings(spec: dict, task: str) -> dict:
    value = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"]["settings"]
    return json.loads(value["runtimeValue"]["constant"])


def test_resources_image_beam_options_and_embedded_config(tmp_path):
    spec = compiled(tmp_path, "--root", "gs://bucket/edgepipe",
                    "--set", "kfp.resources.train.cpu=8", "--set", "kfp.resources.train.memory=30G",
                    "--set", "kfp.resources.train.accelerator_type=NVIDIA_TESLA_T4",
                    "--set", "kfp.beam_runner=DataflowRunner",
                    "--set", "kfp.beam_options.region=europe-west4")
    train = executor(spec, "train")
    assert train["image"] == IMAGE
    assert train["resources"]["resourceCpuLimit"] == "8"
    assert train["resources"]["resourceMemoryLimit"] == "30G"
    accelerator = train["resources"]["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("NVIDIA_TESLA_T4", "1")
    assert "resources" not in executor(spec, "ingest")
    assert settings(spec, "ingest")["beam_options"] == ["region=europe-west4"]
    assert "beam.runner=DataflowRunner" in settings(spec, "ingest")["overrides"]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["root"]["defaultValue"] == "gs://bucket/edgepipe"
    embedded = json.loads(parameters["config_json"]["defaultValue"])
    assert embedded["ingest"]["train_images"] == "../data/fashion_mnist/train-images-idx3-ubyte.gz"
    assert parameters["config_dir"]["defaultValue"] == "/opt/edgepipe/configs"
    for task in spec["root"]["dag"]["tasks"].values():
        assert task["cachingOptions"] == {}  # KFP's cache off: the artifact store is the cache


def test_vertex_runs_train_as_a_multi_replica_custom_job(tmp_path):
    spec = compiled(tmp_path, "--target", "vertex", "--root", "gs://bucket/edgepipe",
                    "--set", "kfp.train_replicas=3",
                    "--set", "kfp.resources.train.accelerator_type=NVIDIA_TESLA_T4",
                    "--set", "kfp.train_machine_type=n1-standard-16",
                    "--set", "kfp.location=europe-west4")
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks["train"]["dependentTasks"]) == ["ingest", "statistics"]
    launcher = executor(spec, "train")
    assert launcher["image"].startswith("gcr.io/ml-pipeline/google-cloud-pipeline-components")
    assert "CustomJob" in " ".join(launcher["args"])
    component = spec["components"][tasks["train"]["componentRef"]["name"]]
    pools = component["inputDefinitions"]["parameters"]["worker_pool_specs"]["defaultValue"]
    assert [pool["replica_count"] for pool in pools] == [1, 2]  # the chief, then 2 workers
    for pool in pools:
        assert pool["machine_spec"] == {"machine_type": "n1-standard-16",
                                        "accelerator_type": "NVIDIA_TESLA_T4",
                                        "accelerator_count": 1}
        assert pool["container_spec"]["image_uri"] == IMAGE  # our image, our component
        assert pool["container_spec"]["args"][-2:] == ["--function_to_execute", "train"]
    assert tasks["train"]["inputs"]["parameters"]["location"]["runtimeValue"]["constant"] == (
        "europe-west4")
    assert tasks["train"]["inputs"]["parameters"]["restart_job_on_worker_restart"][
        "runtimeValue"]["constant"] is True
    assert "runtime.strategy=multi_worker" in settings(spec, "train")["overrides"]
    assert executor(spec, "evaluate")["image"] == IMAGE


def test_a_config_with_tune_compiles_with_a_tune_task_wired_as_the_dag(tmp_path):
    """The components come from the DAG: the optional tune stage gets one when the config has
    [tune], and the stages that read its artifact take its key."""
    output = tmp_path / "pipeline.yaml"
    assert cli.main(["compile", str(REPO / "configs" / "quickstart_tune.toml"), "-o",
                     str(output), "--image", IMAGE]) == 0
    spec = yaml.safe_load(output.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(node.stage for node in dag.CLASSIFICATION)
    assert sorted(tasks["tune"]["dependentTasks"]) == ["ingest", "statistics"]
    assert sorted(tasks["train"]["dependentTasks"]) == ["ingest", "statistics", "tune"]
    assert "tune" in tasks["report"]["dependentTasks"]
    assert executor(spec, "tune")["args"][-2:] == ["--function_to_execute", "tune"]
    source = " ".join(executor(spec, "train")["command"])
    assert "run_task('train', config_json, config_dir, root, settings, {'ingest': ingest, " \
        "'statistics': statistics, 'tune': tune})" in source
    without = compiled(tmp_path)  # the quickstart: no [tune], no tune task
    assert "tune" not in without["root"]["dag"]["tasks"]
    assert "tune" not in without["root"]["dag"]["tasks"]["train"]["dependentTasks"]


def test_bad_compile_arguments_are_exit_2(tmp_path, capsys):
    output = tmp_path / "pipeline.yaml"
    assert cli.main(["compile", str(QUICKSTART), "-o", str(output),
                     "--set", "kfp.resources.trian.cpu=4"]) == 2
    assert "[kfp] resources.trian: unknown stage" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compile", str(QUICKSTART), "-o", str(output), "--target", "argo"])
    assert exit_.value.code == 2 and not output.exists()


def test_a_task_checks_the_keys_its_upstream_tasks_returned(tmp_path):
    config_json = json.dumps({"pipeline": {"name": "quickstart"},
                              "ingest": {"source": "idx", "class_names": ["a", "b"],
                                         "train_images": "missing.gz"}})
    with pytest.raises(Exception, match="missing.gz"):  # the embedded config is validated
        kfp_task.run_task("statistics", config_json, str(tmp_path), str(tmp_path / "root"),
                          "{}", {"ingest": "0000"})
    with pytest.raises(kfp_task.TaskError, match="pipeline parameter `root` is empty"):
        kfp_task.run_task("ingest", config_json, str(tmp_path), "", "{}", {})


def test_vertex_cluster_spec_becomes_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("CLUSTER_SPEC", json.dumps({
        "cluster": {"workerpool0": ["chief-0:2222"], "workerpool1": ["w-0:2222", "w-1:2222"]},
        "environment": "cloud", "task": {"type": "workerpool1", "index": 1}}))
    kfp_task.tf_config_from_cluster_spec()
    assert json.loads(os.environ["TF_CONFIG"]) == {
        "cluster": {"chief": ["chief-0:2222"], "worker": ["w-0:2222", "w-1:2222"]},
        "task": {"type": "worker", "index": 1}}
