"""The DirectRunner pipelines every Beam stage creates."""

import pathlib
import sys

from edgepipe.components.shared.beam_pipeline import create_pipeline
from edgepipe.pipeline.stage import Runtime


def worker_program(_):
    return pathlib.Path(sys.argv[0]).name


def test_multi_processing_workers_run_the_fast_exit_harness(tmp_path):
    import apache_beam as beam

    runtime = Runtime(beam_options=(("direct_running_mode", "multi_processing"),
                                    ("direct_num_workers", "2")))
    output = tmp_path / "programs"
    with create_pipeline(runtime) as pipeline:
        _ = (pipeline | beam.Create(range(4)) | beam.Map(worker_program)
             | beam.io.WriteToText(str(output), num_shards=1, shard_name_template=""))
    assert set(output.read_text().split()) == {"beam_worker.py"}


def test_in_memory_runs_in_this_process(tmp_path):
    import apache_beam as beam

    output = tmp_path / "programs"
    with create_pipeline(Runtime()) as pipeline:
        _ = (pipeline | beam.Create(range(2)) | beam.Map(worker_program)
             | beam.io.WriteToText(str(output), num_shards=1, shard_name_template=""))
    assert set(output.read_text().split()) == {pathlib.Path(sys.argv[0]).name}
