"""`edgepipe gc`: remove what failed runs left under an artifact root.

A stage's scratch folder (scratch/<stage>-<key>: training checkpoints, kept so that a killed
or failed run resumes) is removed when that key commits. A key that never commits (the run
failed and the config was changed since, so no run will need that key again) leaves it for
good; so do the staging folders of processes that died. `gc` removes every scratch folder
whose key no live process is computing (its lock is free) and the stale staging folders.
Committed artifacts and run summaries are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import pathlib
import shutil
from typing import Iterator

from edgepipe.pipeline.store import Store


def folder_bytes(folder: pathlib.Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@contextlib.contextmanager
def _free(locks: list[pathlib.Path]) -> Iterator[bool]:
    """True (and the locks held for the block) when no live process holds any of them."""
    handles = []
    try:
        for path in locks:
            handle = open(path, "a+")
            handles.append(handle)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
        yield True
    finally:
        for handle in handles:
            handle.close()  # closing releases the lock


def collect(root, dry_run: bool = False) -> list[tuple[pathlib.Path, int]]:
    """(folder, bytes) of every scratch folder no live run uses, and of stale staging
    folders; removed unless `dry_run`."""
    store = Store(root)
    found = []
    scratch = store.local / "scratch"
    for folder in sorted(scratch.iterdir()) if scratch.is_dir() else []:
        locks = sorted((store.local / "locks").glob(f"{folder.name}*.lock"))
        with _free(locks) as free:  # a live run holds its key's lock while it trains
            if free:
                found.append((folder, folder_bytes(folder)))
                if not dry_run:
                    shutil.rmtree(folder, ignore_errors=True)
    staging = store.local / "staging"
    if dry_run:
        return found
    before = {folder: folder_bytes(folder) for folder in
              (sorted(staging.iterdir()) if staging.is_dir() else [])}
    return found + [(folder, before[folder]) for folder in store.remove_stale_staging()]
