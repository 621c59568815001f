"""The report on a gs:// root learns about the upstream stages from its context: its run
overview lists every one of them (it read the store's manifests beside local paths before, and
on a bucket found none), and says which result was resumed from a checkpoint.

The upstream stages' results are the session's real artifacts (tests/conftest.py), committed
into the bucket by the real ObjectStore under the keys the tiny quickstart plans for them;
then `edgepipe run --stage report` runs the real report stage against them."""

from __future__ import annotations

import dataclasses
import html.parser
import shutil
import uuid

import pytest

from edgepipe import api
from edgepipe.contracts import storage
from edgepipe.pipeline import runner
from edgepipe.pipeline.spec import StageResult
from edgepipe.pipeline.stage import Context, Runtime
from edgepipe.pipeline.store import Store
from tests.objectstore import emulator

UPSTREAM = ("ingest", "statistics", "train", "evaluate", "quantize")


def replay(spec, artifacts: dict, resumed: bool):
    """The stage, but its run copies an existing result: what it returns is what the real
    stage returned then (its properties), and whether it resumed."""

    def run(inputs, outputs, config, context):
        for name, artifact in artifacts.items():
            shutil.copytree(artifact.path, outputs[name], dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("manifest.json"))
        return StageResult(dict(next(iter(artifacts.values())).properties), resumed=resumed)

    return dataclasses.replace(spec, run=run, remote_io=False)


class Rows(html.parser.HTMLParser):
    """The run overview's rows: (data-stage, the row's text)."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.inside = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "stage" in (attrs.get("class") or "").split():
            self.rows.append([attrs["data-stage"], ""])
            self.inside = True
        elif tag == "tr":
            self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.rows[-1][1] += data


@pytest.fixture(scope="module")
def report_on_a_bucket(gcs_server, tiny_config, tmp_path_factory, examples_artifact,
                       statistics_artifacts, model_artifact, evaluation_artifact,
                       tflite_artifact):
    bucket = f"edgepipe-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(gcs_server, bucket)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGEPIPE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        config = api.load_config(tiny_config, root=f"gs://{bucket}/edgepipe")
        store = Store(config.root)
        results = {"ingest": {"examples": examples_artifact}, "statistics": statistics_artifacts,
                   "train": {"model": model_artifact},
                   "evaluate": {"evaluation": evaluation_artifact},
                   "quantize": {"tflite": tflite_artifact}}
        for step in runner.plan(config):
            if step.node.stage in results:
                context = Context("tests", "an-earlier-run", 7, Runtime(),
                                  store.scratch_dir(step.node.stage, step.key))
                store.execute(replay(step.spec, results[step.node.stage],
                                     resumed=step.node.stage == "train"),
                              step.key, {}, config.stages[step.node.stage], context,
                              record={"key_parts": step.parts})
        summary = runner.run(config, stages=["report"])
    report = summary["stages"][0]["artifacts"]["report"]
    parser = Rows()
    parser.feed(storage.read_text(f"{report}/report.html"))
    return summary, parser.rows


def test_the_report_on_a_bucket_lists_every_upstream_stage(report_on_a_bucket):
    summary, rows = report_on_a_bucket
    assert summary["status"] == "succeeded" and summary["stages"][0]["status"] == "ran"
    assert [stage for stage, _ in rows] == list(UPSTREAM)  # in the DAG's order
    for _, text in rows:
        assert "reused from the cache (run an-earlier-run)" in text


def test_the_report_says_which_stage_resumed_from_a_checkpoint(report_on_a_bucket):
    _, rows = report_on_a_bucket
    resumed = [stage for stage, text in rows if "resumed from a checkpoint" in text]
    assert resumed == ["train"]
