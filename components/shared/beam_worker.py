"""The worker process of the DirectRunner's multi_processing mode: Beam's own SDK harness,
ended with os._exit.

A process that has imported TensorFlow takes about a second to tear it down at interpreter
exit, and the runner stops its workers one after another, so a pipeline on N workers waited
N seconds after its last bundle. When the harness returns, the runner has already received
every result and each bundle's files are closed, so nothing is lost by skipping the teardown;
the exit status still says whether the harness failed.
"""

from __future__ import annotations

import logging
import os
import sys


def main() -> None:
    from apache_beam.runners.worker import sdk_worker_main

    status = 0
    try:
        sdk_worker_main.main(sys.argv)
    except BaseException:  # noqa: BLE001  the harness has logged it; the status reports it
        logging.getLogger(__name__).exception("the Beam SDK harness failed")
        status = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
