"""`edgepipe gc` (issue 27): checkpoints that failed runs left in scratch/ were never removed
when the key never committed (the config changed after the failure)."""

from __future__ import annotations

import fcntl

from edgepipe import cli
from tests.conftest import REPO

QUICKSTART = str(REPO / "configs" / "quickstart.toml")


def test_gc_removes_abandoned_scratch_and_keeps_a_live_runs(capsys, tmp_path):
    abandoned = tmp_path / "scratch" / "train-0123456789abcdef"
    live = tmp_path / "scratch" / "train-fedcba9876543210"
    for folder in (abandoned, live):
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "ckpt-1.data").write_bytes(b"\0" * 200_000)
    locks = tmp_path / "locks"
    locks.mkdir()
    (locks / f"{abandoned.name}.lock").write_text("")  # a run that died: its lock is free
    with open(locks / f"{live.name}.lock", "a+") as held:  # a run training now holds its lock
        fcntl.flock(held, fcntl.LOCK_EX)
        assert cli.main(["gc", QUICKSTART, "--root", str(tmp_path), "--dry-run"]) == 0
        assert "would remove 1 folder(s), 0.2 MB" in capsys.readouterr().out
        assert abandoned.is_dir()
        assert cli.main(["gc", QUICKSTART, "--root", str(tmp_path)]) == 0
        output = capsys.readouterr().out
    assert f"removed {abandoned}" in output and str(live) not in output
    assert not abandoned.exists() and live.is_dir()
