"""Configs and roots a careless user gives (issue 27): each is exit status 2 with a one-line
message naming what is wrong, before anything runs. Before: a RecursionError (exit 1), a
Keras traceback, training "forever", a 30-line chained OSError, a name refused only at push."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys

import pytest

from edgepipe import cli
from tests.conftest import REPO

QUICKSTART = str(REPO / "configs" / "quickstart.toml")


def refused(capsys, *arguments: str) -> str:
    """The one-line message of a command that must exit 2."""
    assert cli.main(list(arguments)) == 2
    message = capsys.readouterr().err.strip()
    assert "Traceback" not in message
    return message


@pytest.mark.parametrize("override, words", [
    ("train.epochs=1000000000000", ["[train] epochs", "100000"]),
    ("train.batch_size=10000000000", ["[train] batch_size", "65536"]),
    ('pipeline.name="../escape"', ["[pipeline] name", "../escape"]),
    ("pipeline.seed=100000000000000000000", ["[pipeline] seed"]),
    ("ingest.train_images=/dev/zero", ["/dev/zero", "not a regular file or a folder"]),
])
def test_values_outside_their_bounds_are_config_errors(capsys, tmp_path, override, words):
    message = refused(capsys, "status", QUICKSTART, "--root", str(tmp_path), "--set", override)
    assert all(word in message for word in words), message


def test_a_toml_nested_1000_deep_is_a_config_error(capsys, tmp_path):
    config = tmp_path / "deep.toml"
    config.write_text("[pipeline]\nname = 'deep'\nx = " + "[" * 1000 + "]" * 1000 + "\n")
    message = refused(capsys, "status", str(config))
    assert str(config) in message and "nests" in message


@pytest.mark.parametrize("root", ["a-file", "a-file/below", "/dev/null"])
def test_a_root_that_is_not_a_folder_is_a_config_error(capsys, tmp_path, root):
    (tmp_path / "a-file").write_text("not a folder")
    path = root if root.startswith("/") else str(tmp_path / root)
    message = refused(capsys, "run", QUICKSTART, "--root", path)
    assert "not a folder" in message and path in message


def _no_writes() -> None:
    """A process that cannot write a byte to any file: what a full disk looks like to it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def test_a_root_that_cannot_be_written_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "edgepipe", "run", QUICKSTART, "--root", str(tmp_path / "root")],
        cwd=REPO, capture_output=True, text=True, preexec_fn=_no_writes,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("edgepipe: File too large") and "free space" in last
    assert str(tmp_path / "root") in last
    assert "Traceback" not in result.stderr
