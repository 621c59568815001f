"""A train stage in a child process that a test can SIGKILL between epochs (resume tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent("""
    import logging, sys, time
    from edgepipe.components.train import stage as train
    from edgepipe.pipeline.stage import Artifact, Context, Runtime
    from edgepipe.pipeline.store import Store

    class SlowEpochs(logging.Handler):  # gives the test time to kill between two epochs
        def emit(self, record):
            if " step " not in record.getMessage() and record.getMessage().startswith("epoch"):
                time.sleep(1.5)

    root, examples, statistics, schema, key, config = sys.argv[1:]
    log = logging.getLogger("edgepipe.killed")
    log.setLevel(logging.INFO)
    log.addHandler(SlowEpochs())
    store = Store(root)
    inputs = {"examples": Artifact.load(examples), "statistics": Artifact.load(statistics),
              "schema": Artifact.load(schema)}
    config = train.Config.model_validate_json(config)
    context = Context("tests", "killed", 7, Runtime(), store.scratch_dir("train", key),
                      log=log)
    store.execute(train.SPEC, key, inputs, config, context)
""")


def start(root, examples, statistics: dict, key: str, config_json: str) -> subprocess.Popen:
    """Trains under `root` with the scratch folder of `key`; stderr is a pipe."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_USE_LEGACY_KERAS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(root), str(examples.path),
         str(statistics["statistics"].path), str(statistics["schema"].path), key, config_json],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
