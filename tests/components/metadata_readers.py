"""Maintained readers of the standard TFLite metadata, in a venv of their own.

tflite-support 0.4.4 (the TFLite Task Library and the C++ MetadataDisplayer) cannot be
installed beside TensorFlow 2.21 (it pins protobuf < 4), so the tests install it into a venv
of its own, once: `<project venv>/edgepipe-readers/tflite-support-0.4.4` (about 25 s and
280 MB the first time, reused afterwards; delete the folder to rebuild it). Its wheels exist
for Python 3.7 to 3.11 only; its compiled modules link libusb (Debian: libusb-1.0-0, which
.ci/run installs). tflite_support_reader.py runs inside it and answers in JSON.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

PACKAGES = ("tflite-support==0.4.4", "numpy<2")  # its pybind modules predate numpy 2
VENV = pathlib.Path(os.environ.get(
    "EDGEPIPE_READER_VENV", pathlib.Path(sys.prefix) / "edgepipe-readers" / "tflite-support-0.4.4"))
SCRIPT = pathlib.Path(__file__).with_name("tflite_support_reader.py")


def _base_python() -> str | None:
    """A Python 3.7-3.11 interpreter for the reader venv."""
    if sys.version_info[:2] <= (3, 11):
        return getattr(sys, "_base_executable", sys.executable)
    return shutil.which("python3.11")


def reader_python() -> pathlib.Path:
    """The reader venv's python, building the venv the first time."""
    python = VENV / "bin" / "python"
    if (VENV / ".complete").is_file():
        return python
    base = _base_python()
    if base is None:
        pytest.skip("tflite-support 0.4.4 has wheels for Python <= 3.11 only and no "
                    "python3.11 is on PATH: the metadata cannot be read back with it here.")
    building = VENV.with_name(VENV.name + f".building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    steps = [[base, "-m", "venv", str(building)],
             [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", *PACKAGES]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            pytest.fail(f"could not build the tflite-support reader venv ({' '.join(step)}): "
                        f"{(done.stderr or done.stdout)[-2000:]}")
    (building / ".complete").write_text(" ".join(PACKAGES) + "\n")
    shutil.rmtree(VENV, ignore_errors=True)
    building.rename(VENV)  # the venv's scripts name their folder: venv python is path-free
    return python


def read(jobs: list[dict]) -> list[dict]:
    """Run tflite_support_reader.py on the jobs ({"path", "images", "texts"})."""
    done = subprocess.run([str(reader_python()), str(SCRIPT)], input=json.dumps({"models": jobs}),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        hint = (" (install Debian's libusb-1.0-0: tflite-support's modules link it)"
                if "libusb" in done.stderr else "")
        pytest.fail(f"tflite-support could not read the models{hint}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)["results"]
