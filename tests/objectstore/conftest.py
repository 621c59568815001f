"""A fake-gcs-server on loopback for the whole session (tests/objectstore/emulator.py), a new
empty bucket per test, and the edgepipe cache of this machine in a temporary folder."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.e2e.conftest import tiny_config  # noqa: F401 (a fixture)
from tests.objectstore import beam_shim, emulator


@pytest.fixture(scope="session")
def gcs_server():
    """The server's URL; STORAGE_EMULATOR_HOST and the offline variables are set for the
    session (and inherited by the processes tests start), then restored."""
    with emulator.fake_gcs_server() as url:
        saved = {key: os.environ.get(key) for key in emulator.environment(url)}
        os.environ.update(emulator.environment(url))
        beam_shim.install()  # in this process; the ones it starts get it from site/
        try:
            yield url
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture
def bucket(gcs_server, tmp_path, monkeypatch) -> str:
    """gs://<a new empty bucket>; the edgepipe cache (local copies, staging) under tmp_path."""
    name = f"edgepipe-{uuid.uuid4().hex[:12]}"
    emulator.create_bucket(gcs_server, name)
    monkeypatch.setenv("EDGEPIPE_CACHE_DIR", str(tmp_path / "cache"))
    return f"gs://{name}"
