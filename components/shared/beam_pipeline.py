"""One way for every Beam stage to create its pipeline from the runtime settings.

For the default DirectRunner we pick Beam's portable FnApiRunner ourselves. Since Beam 2.6x
the DirectRunner first tries the Prism runner, which downloads a binary from GitHub at run
time: offline that fails after a network timeout and falls back, and online it runs code
nobody pinned. The FnApiRunner is what the DirectRunner falls back to for batch pipelines
and it honours --direct_running_mode and --direct_num_workers; in multi_processing mode its
workers run components/shared/beam_worker.py (Beam's harness with a fast exit). Any other runner
(Dataflow, Flink, Spark, Prism) is passed to Beam unchanged.

gs:// paths need `apache-beam[gcp]` (the `gcs` extra). With STORAGE_EMULATOR_HOST set (a GCS
emulator on loopback), `adapt_to_gcs_emulator` runs in this process and in the
multi_processing workers: Beam's GCS client is made anonymous at once (Beam would otherwise
search for Google credentials for about 25 s per process before going anonymous by itself),
and Beam copies and deletes objects one request at a time instead of in GCS batch requests,
which fake-gcs-server answers with an empty reply. Nothing changes without the variable.
"""

from __future__ import annotations

import os
import sys

from edgepipe.pipeline.stage import Runtime

WORKER_COMMAND = f"{sys.executable} -m edgepipe.components.shared.beam_worker"


def adapt_to_gcs_emulator() -> bool:
    """Under a GCS emulator (STORAGE_EMULATOR_HOST): fill Beam's process-wide credential cache
    with "none" (its GCS client is then anonymous at once) and replace GcsIO's batch copy and
    delete by one request per object. True if it did. This touches Beam internals
    (`_Credentials`, GcsIO), so it happens only with the variable set."""
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        return False
    try:
        from apache_beam.internal.gcp import auth
        from apache_beam.io.gcp import gcsio
    except ImportError:  # no apache-beam[gcp]: no gs:// either
        return False
    with auth._Credentials._credentials_lock:
        auth._Credentials._credentials, auth._Credentials._credentials_init = None, True
    gcsio.GcsIO.copy_batch = _copy_one_by_one
    gcsio.GcsIO.delete_batch = _delete_one_by_one
    return True


def _copy_one_by_one(self, src_dest_pairs):
    results = []
    for src, dest in src_dest_pairs:
        try:
            self.copy(src, dest)
            results.append((src, dest, None))
        except Exception as error:  # noqa: BLE001  reported per pair, as copy_batch does
            results.append((src, dest, error))
    return results


def _delete_one_by_one(self, paths):
    results = []
    for path in paths:
        try:
            self.delete(path)
            results.append((path, None))
        except Exception as error:  # noqa: BLE001  reported per path, as delete_batch does
            results.append((path, error))
    return results


def create_pipeline(runtime: Runtime):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    adapt_to_gcs_emulator()
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
