"""Run at the start of every Python process whose PYTHONPATH holds this folder (the processes
the object-store tests start with emulator.environment): Beam's GCS I/O adapted to
fake-gcs-server (tests/objectstore/beam_shim.py, loaded by path: no package import here)."""

import importlib.util
import os
import pathlib

if os.environ.get("STORAGE_EMULATOR_HOST"):
    _path = pathlib.Path(__file__).resolve().parent.parent / "beam_shim.py"
    _spec = importlib.util.spec_from_file_location("edgepipe_tests_beam_shim", _path)
    _shim = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_shim)
    _shim.install()
