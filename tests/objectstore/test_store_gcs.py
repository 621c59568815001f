"""The artifact store on a gs:// root, against a real GCS-protocol server on loopback
(fake-gcs-server, which enforces ifGenerationMatch as GCS does): commit and lookup, two runs
racing for one key, a killed stage, the registry's version claims."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from edgepipe.contracts import registry, storage
from edgepipe.pipeline import runner
from edgepipe.pipeline.store import Store
from tests.conftest import REPO
from tests.pipeline.test_runner import NODES, load, statuses


def test_commit_lookup_and_cache_on_a_bucket(bucket):
    root = f"{bucket}/edgepipe"
    first = runner.run(load(root), nodes=NODES)
    assert statuses(first) == {"numbers": "ran", "doubled": "ran", "total": "ran"}
    assert first["stages"][2]["metrics"] == {"total": 12}
    store = Store(root)
    key = first["stages"][1]["key"]
    record = store.lookup("doubled", key)
    assert record["run_id"] == first["run_id"] and record["attempt"]
    artifact = store.artifacts("doubled", key)["doubled"]
    assert artifact.path == f"{root}/artifacts/doubled/{key}/attempts/{record['attempt']}/doubled"
    assert json.loads(storage.read_text(f"{artifact.path}/numbers.json")) == [2, 4, 6]
    assert first["stages"][1]["artifacts"]["doubled"] == artifact.path
    # the last stage learnt of the others from its context, not from a local manifest path
    upstream = json.loads(storage.read_text(f"{first['stages'][2]['artifacts']['total']}"
                                            "/upstream.json"))
    assert upstream == [["numbers", first["stages"][0]["key"], False, False],
                        ["doubled", key, False, False]]
    again = runner.run(load(root), nodes=NODES)
    assert statuses(again) == dict.fromkeys(("numbers", "doubled", "total"), "cached")
    assert json.loads(storage.read_text(f"{root}/runs/latest.json")) == again
    assert not storage.glob(f"{root}/scratch/**")  # work folders are removed after commit


RACER = """
import json, sys
from tests.pipeline.test_runner import NODES, load
from edgepipe.pipeline import runner
summary = runner.run(load(sys.argv[1], sleep_seconds=float(sys.argv[2])), nodes=NODES,
                     stages=["doubled"])
print(json.dumps(summary))
"""


def test_two_machines_racing_for_one_key_agree_on_one_result(bucket, tmp_path):
    """Two processes with caches of their own (two machines: no shared lock) compute the same
    key at once; the first commit wins and the other uses its result."""
    root = f"{bucket}/edgepipe"
    runner.run(load(root), nodes=NODES, stages=["numbers"])
    racers = [subprocess.Popen(
        [sys.executable, "-c", RACER, root, "2"], cwd=REPO, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "EDGEPIPE_CACHE_DIR": str(tmp_path / f"m{i}")})
        for i in range(2)]
    summaries = [json.loads(racer.communicate()[0].splitlines()[-1]) for racer in racers]
    assert [statuses(summary) for summary in summaries] == [{"doubled": "ran"}] * 2
    key = summaries[0]["stages"][0]["key"]
    record = Store(root).lookup("doubled", key)
    assert record["run_id"] in {summary["run_id"] for summary in summaries}
    assert {s["stages"][0]["artifacts"]["doubled"] for s in summaries} == {
        f"{root}/artifacts/doubled/{key}/attempts/{record['attempt']}/doubled"}
    # the loser deleted its own attempt: one attempt is left, the committed one
    assert storage.listdir(f"{root}/artifacts/doubled/{key}/attempts") == [record["attempt"]]


KILLED = """
import sys
from tests.pipeline.test_runner import NODES, load
from edgepipe.pipeline import runner
runner.run(load(sys.argv[1], sleep_seconds=60), nodes=NODES)
"""


def test_a_killed_stage_leaves_nothing_a_later_run_trusts(bucket, tmp_path):
    root = f"{bucket}/edgepipe"
    process = subprocess.Popen([sys.executable, "-c", KILLED, root], cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    staging = Store(root).local / "staging"
    while not list(staging.glob("doubled-*/doubled/started")):
        assert process.poll() is None, "the run ended before doubled started"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # debris a killed upload could leave: an attempt's files without a commit
    key = next(step.key for step in runner.plan(load(root), NODES) if step.node.stage == "doubled")
    storage.write_text(f"{root}/artifacts/doubled/{key}/attempts/killed/doubled/numbers.json",
                       "[666]")
    assert Store(root).lookup("doubled", key) is None
    summary = runner.run(load(root), nodes=NODES)
    assert statuses(summary) == {"numbers": "cached", "doubled": "ran", "total": "ran"}
    assert summary["stages"][2]["metrics"] == {"total": 12}  # not 666 * ...
    assert not list(staging.iterdir())  # the dead run's local staging was removed


def test_racing_pushes_to_a_bucket_registry_get_distinct_versions(bucket, tmp_path):
    folder = f"{bucket}/registry"

    def push(index: int) -> int:
        def fill(draft: pathlib.Path) -> None:
            (draft / "model.tflite").write_bytes(os.urandom(256))
        return registry.publish(folder, "digits", fill, {"model_key": f"m{index}"})["version"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        versions = sorted(pool.map(push, range(4)))
    assert versions == [1, 2, 3, 4] == registry.list_versions(folder, "digits")
    keys = {registry.read_metadata(folder, "digits", v)["model_key"] for v in versions}
    assert keys == {"m0", "m1", "m2", "m3"}
    local = registry.local_version(folder, "digits", 2)
    assert sorted(p.name for p in local.iterdir()) == [
        ".claim", "checksums.json", "metadata.json", "model.tflite"]
