"""A registry pushed by the real push stage, a running `edgepipe serve`, and a client that
speaks only TensorFlow Serving's documented REST format (urllib, JSON)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO

STARTUP_LIMIT_SECONDS = 120  # a server that never comes up fails the test instead of hanging it


@pytest.fixture(scope="session")
def pushed_registry(tmp_path_factory, run_stage, examples_artifact, model_artifact,
                    evaluation_artifact, tflite_artifact):
    folder = tmp_path_factory.mktemp("registry")
    inputs = {"examples": examples_artifact, "model": model_artifact,
              "evaluation": evaluation_artifact, "tflite": tflite_artifact}
    properties, _ = run_stage("push", inputs, {"registry": {"path": str(folder), "model_name": "tests"}})
    assert properties["pushed"] and properties["version"] == 1
    return folder


def call(base: str, method: str, path: str, body=None, headers: dict | None = None):
    """(status, decoded JSON or text) of one HTTP request."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=STARTUP_LIMIT_SECONDS) as response:
            status, text, kind = response.status, response.read().decode(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, text, kind = error.code, error.read().decode(), error.headers["Content-Type"]
    return status, json.loads(text) if kind == "application/json" else text


@contextlib.contextmanager
def serve(registry, *arguments: str, env: dict | None = None, log_path=None):
    """Start `edgepipe serve` on a free loopback port; yields (base URL, process)."""
    log = open(log_path or os.devnull, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "edgepipe", "serve", "--registry", str(registry), "--port", "0",
         *arguments],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, **(env or {})},
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, f"the server did not start: {line!r} (log: {log_path})"
        base = match[1]
        deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
        while call(base, "GET", "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        process.wait()
        log.close()
