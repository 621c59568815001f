"""One way for every Beam stage to create its pipeline from the runtime settings.

For the default DirectRunner we pick Beam's portable FnApiRunner ourselves. Since Beam 2.6x
the DirectRunner first tries the Prism runner, which downloads a binary from GitHub at run
time: offline that fails after a network timeout and falls back, and online it runs code
nobody pinned. The FnApiRunner is what the DirectRunner falls back to for batch pipelines
and it honours --direct_running_mode and --direct_num_workers; in multi_processing mode its
workers run components/shared/beam_worker.py (Beam's harness with a fast exit). Any other runner
(Dataflow, Flink, Spark, Prism) is passed to Beam unchanged.

gs:// paths need `apache-beam[gcp]` (the `gcs` extra). What Beam's GCS I/O needs to work
against a local GCS emulator is the tests' business (tests/objectstore/beam_shim.py).
"""

from __future__ import annotations

import sys

from edgepipe.pipeline.stage import Runtime

WORKER_COMMAND = f"{sys.executable} -m edgepipe.components.shared.beam_worker"


def create_pipeline(runtime: Runtime):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(runtime.beam_pipeline_options())
    if runtime.beam_runner != "DirectRunner":
        return beam.Pipeline(options=options)
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    from apache_beam.transforms import environments

    class DirectFnApiRunner(fn_runner.FnApiRunner):
        """The FnApiRunner, whose multi_processing workers run WORKER_COMMAND (run_pipeline
        sets the subprocess environment; this setter swaps the command it names)."""

        @property
        def _default_environment(self):
            return self._environment

        @_default_environment.setter
        def _default_environment(self, environment):
            if isinstance(environment, environments.SubprocessSDKEnvironment):
                environment = environments.SubprocessSDKEnvironment.from_command_string(
                    command_string=WORKER_COMMAND)
            self._environment = environment

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision_info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    return beam.Pipeline(runner=DirectFnApiRunner(provision_info=provision_info),
                         options=options)
