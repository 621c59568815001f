"""`edgepipe` with its artifact root and registry in a bucket of a real GCS-protocol server on
loopback (fake-gcs-server through STORAGE_EMULATOR_HOST): ingest and statistics write the
bucket through Beam, a killed ingest leaves nothing trusted, runs again are cached, `status`
lists them, `serve` serves a version from the bucket; bad roots are exit 2 and write nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edgepipe import cli
from edgepipe.contracts import storage
from edgepipe.pipeline.store import Store
from tests.conftest import REPO
from tests.objectstore import emulator
from tests.serving.conftest import call, pushed_registry, serve  # noqa: F401 (a fixture)


def edgepipe(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgepipe", *args], cwd=REPO, text=True,
                          capture_output=True, env=env)


def summary_of(root: str) -> dict:
    return json.loads(storage.read_text(f"{root}/runs/latest.json"))


def kill_ingest_once_it_writes(config, root: str) -> None:
    """Start `edgepipe run --stage ingest` and SIGKILL it once Beam has written into its
    attempt in the bucket."""
    process = subprocess.Popen([sys.executable, "-m", "edgepipe", "run", str(config), "--root",
                                root, "--stage", "ingest"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not storage.glob(f"{root}/artifacts/ingest/*/attempts/**"):
        assert process.poll() is None, "ingest ended before it wrote anything"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_ingest_and_statistics_on_a_bucket_root(bucket, tiny_config, capsys):
    root = f"{bucket}/edgepipe"
    assert cli.main(["run", str(tiny_config), "--root", root, "--stage", "statistics"]) == 2
    assert "run --stage ingest first" in capsys.readouterr().err
    kill_ingest_once_it_writes(tiny_config, root)
    assert not storage.glob(f"{root}/artifacts/ingest/*/manifest.json")  # nothing committed

    assert cli.main(["run", str(tiny_config), "--root", root, "--stage", "ingest"]) == 0
    ingest = summary_of(root)["stages"][0]
    assert ingest["status"] == "ran" and ingest["metrics"]["splits"]["test"] == 100
    examples = ingest["artifacts"]["examples"]  # Beam wrote the shards into the attempt
    assert examples.startswith(f"{root}/artifacts/ingest/{ingest['key']}/attempts/")
    assert storage.glob(f"{examples}/examples-train.tfrecord-*-of-*")
    assert storage.isfile(f"{examples}/dataset_info.json")
    assert not list(Store(root).local.glob("staging/*"))  # nothing went through local disk

    assert cli.main(["run", str(tiny_config), "--root", root, "--stage", "statistics"]) == 0
    statistics = summary_of(root)["stages"][0]
    assert statistics["status"] == "ran"
    assert statistics["metrics"]["num_examples"]["test"] == 100
    assert storage.isfile(f"{statistics['artifacts']['schema']}/schema.pbtxt")

    capsys.readouterr()
    assert cli.main(["run", str(tiny_config), "--root", root, "--stage", "ingest",
                     "--stage", "statistics"]) == 0
    assert [s["status"] for s in summary_of(root)["stages"]] == ["cached", "cached"]
    assert cli.main(["status", str(tiny_config), "--root", root]) == 0
    out = capsys.readouterr().out
    assert f"ingest      committed key {ingest['key']}" in out
    assert f"statistics  committed key {statistics['key']}" in out
    assert "train       missing" in out


def test_serve_a_version_placed_in_a_bucket_registry(bucket, pushed_registry):
    registry = f"{bucket}/registry"
    storage.upload_tree(pushed_registry / "tests" / "1", f"{registry}/tests/1")
    with serve(registry) as (base, _):
        status, answer = call(base, "POST", "/v1/models/tests:predict",
                              {"instances": [[[[0]] * 28] * 28]})
        assert status == 200 and len(answer["predictions"][0]) == 10
        status, answer = call(base, "GET", "/v1/models/tests")
        assert answer["model_version_status"][0]["version"] == "1"


@pytest.mark.parametrize("case", ["unknown scheme", "no s3fs", "no credentials",
                                  "unreachable", "no such bucket"])
def test_an_unusable_root_is_exit_2_naming_it_and_writes_nothing(case, gcs_server, tiny_config,
                                                                  tmp_path):
    env = {**os.environ, "EDGEPIPE_CACHE_DIR": str(tmp_path / "cache")}
    root, expected = {
        "unknown scheme": ("foo://bucket/x", "no installed file system handles foo:// URIs"),
        "no s3fs": ("s3://bucket/x", "install s3fs"),
        "no credentials": ("gs://bucket/x", "GOOGLE_APPLICATION_CREDENTIALS"),
        "unreachable": ("gs://bucket/x", "cannot reach bucket 'bucket' at http://127.0.0.1:"),
        "no such bucket": ("gs://missing-bucket/x", "bucket 'missing-bucket' does not exist"),
    }[case]
    if case == "no credentials":
        env = {**emulator.without_credentials(), "EDGEPIPE_CACHE_DIR": env["EDGEPIPE_CACHE_DIR"]}
    elif case == "unreachable":
        env["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{emulator.free_port()}"
    for command in ("run", "status"):
        done = edgepipe(command, str(tiny_config), "--root", root, env=env)
        assert done.returncode == 2, done.stderr
        assert f"edgepipe: {root}: " in done.stderr and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "cache").exists()  # nothing written here, nor in a bucket


@pytest.mark.slow  # about 2 minutes: the whole tiny pipeline, then a cached run
def test_the_whole_pipeline_on_a_bucket_root_and_registry(bucket, tiny_config,
                                                           tiny_fashion_mnist):
    """The raw files, the artifacts and the registry all in the bucket. The TensorFlow stages
    too: the store hands them local copies of their inputs and uploads their outputs, so
    they never give TensorFlow a gs:// path; push publishes into the bucket registry, which
    `edgepipe serve` then serves."""
    root, registry = f"{bucket}/edgepipe", f"{bucket}/registry"
    arguments = ["run", str(tiny_config), "--root", root, "--set", f'registry.path="{registry}"']
    storage.upload_tree(os.path.dirname(tiny_fashion_mnist["train_images"]), f"{bucket}/raw")
    for key, path in tiny_fashion_mnist.items():  # the raw IDX files, read by Beam from gs://
        arguments += ["--set", f'ingest.{key}="{bucket}/raw/{os.path.basename(path)}"']
    assert cli.main(arguments) == 0
    summary = summary_of(root)
    assert [stage["status"] for stage in summary["stages"]] == ["ran"] * 7
    assert summary["stages"][0]["metrics"]["read"] == {"train": 300, "test": 100}
    assert summary["stages"][3]["metrics"]["blessed"]
    report = summary["stages"][5]["artifacts"]["report"]
    assert "<html" in storage.read_text(f"{report}/report.html")[:2000].lower()
    assert storage.isfile(f"{registry}/quickstart/1/metadata.json")
    assert cli.main(arguments) == 0
    assert [stage["status"] for stage in summary_of(root)["stages"]] == ["cached"] * 7
    with serve(registry) as (base, _):
        status, answer = call(base, "POST", "/v1/models/quickstart:predict",
                              {"instances": [[[[0]] * 28] * 28]})
        assert status == 200 and len(answer["predictions"][0]) == 10
