"""The versioned model registry: `<registry>/<model name>/<version>/`, versions 1, 2, 3...

A version folder is itself a SavedModel directory (saved_model.pb, variables/, assets/ at its
root: the layout TensorFlow Serving and KServe load from `<registry>/<model name>`), with
model.tflite (the deployable variant, standard TFLite metadata inside), model.json,
labels.txt, checksums.json (the SHA-256 of every other file, contracts/checksums.py) and
metadata.json (lineage: run, data, metrics) beside it. Versions pushed before this layout
keep their SavedModel in saved_model/; `saved_model_dir` finds either. On a local disk a
version is built in a dot-folder beside the versions and appears by one atomic rename, under
a lock so that concurrent pushes never take the same number. On an object store (gs://, through
edgepipe.contracts.storage; there is no atomic rename or lock) files are uploaded with
metadata.json last, and a folder without metadata.json is not a version: readers never see a
half-written one either way. Concurrent pushes to one object-store registry never take the
same number: a push claims its number first by creating <version>/.claim exclusively
(storage.create_exclusive: GCS's ifGenerationMatch=0), and a number once claimed is never
reused, even if that push dies before its metadata.json.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import shutil
import tempfile
import uuid
from typing import Any, Callable, Iterator

from edgepipe.contracts import checksums, storage
from edgepipe.contracts.artifacts import model as model_artifact

METADATA = "metadata.json"
LOCK = ".push.lock"
SAVED_MODEL_FILE = "saved_model.pb"
SAVED_MODEL_FOLDER = model_artifact.SAVED_MODEL  # a Model artifact's (and older versions')
TFLITE_MODEL = "model.tflite"  # the deployable variant; its sidecar <variant>.json beside it
LABELS = "labels.txt"  # the class names, one per line
CLAIM = ".claim"


def sidecar_name(sidecar: str, variant_stem: str) -> str:
    """The registry name of a variant's sidecar file: int8.json -> model.tflite.json."""
    return TFLITE_MODEL + sidecar[len(variant_stem):]


is_remote = storage.is_remote
join = storage.join
_listdir = storage.listdir
_isfile = storage.isfile
_read_text = storage.read_text


def is_version_name(entry: str) -> bool:
    """A version folder's name: ASCII digits only ("²" and "٣" are digits to str.isdigit but
    not to int(), and are not versions)."""
    return entry.isascii() and entry.isdigit()


def model_names(registry: str | os.PathLike) -> list[str]:
    """Every model name with at least one complete version, sorted."""
    root = os.fspath(registry)
    return sorted(
        name for name in _listdir(root) if not name.startswith(".") and list_versions(root, name)
    )


def list_versions(registry: str | os.PathLike, name: str) -> list[int]:
    """The complete versions of a model, ascending; [] when it has none (or does not exist)."""
    folder = join(registry, name)
    return sorted(
        int(entry) for entry in _listdir(folder)
        if is_version_name(entry) and _isfile(join(folder, entry, METADATA))
    )


def latest_version(registry: str | os.PathLike, name: str) -> int | None:
    versions = list_versions(registry, name)
    return versions[-1] if versions else None


def pushed_version(config, version: int | None = None) -> tuple[pathlib.Path, int]:
    """(local folder, number) of a pipeline config's pushed model: `version`, or the newest.
    ValueError, naming the config or registry and the fix, when there is none: the commands
    that run a pushed model (generate, listen, forecast) say the same thing."""
    if config.registry is None:
        raise ValueError(f"{config.path}: no [registry] section: the command runs the model "
                         "the pipeline pushed there; add one and run the pipeline.")
    path, name = config.registry.path, config.registry.model_name
    version = version or latest_version(path, name)
    if version is None:
        raise ValueError(f"{path}: no pushed version of {name!r}; run `edgepipe run "
                         f"{config.path}` first (a blessed model is pushed).")
    return local_version(path, name, version), int(version)


def version_path(registry: str | os.PathLike, name: str, version: int) -> str:
    return join(registry, name, str(int(version)))


def saved_model_dir(folder: str | os.PathLike) -> str:
    """The SavedModel directory of a registry version (the version folder itself) or of a
    Model artifact (its saved_model/, as in versions pushed before the TF Serving layout)."""
    root = os.fspath(folder)
    return root if _isfile(join(root, SAVED_MODEL_FILE)) else join(root, SAVED_MODEL_FOLDER)


def local_version(registry: str | os.PathLike, name: str, version: int,
                  refresh: bool = False) -> pathlib.Path:
    """A version's folder on this machine: itself in a local registry; in an object-store
    registry a copy downloaded once into the edgepipe cache (a complete version does not
    change; `refresh` downloads it again), which the model server loads."""
    return storage.local_copy(version_path(registry, name, version), refresh=refresh)


def read_metadata(registry: str | os.PathLike, name: str, version: int) -> dict[str, Any]:
    path = join(version_path(registry, name, version), METADATA)
    if not _isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: model {name!r} has no complete version {version} in "
            f"{os.fspath(registry)} (versions: {list_versions(registry, name)})."
        )
    return read_version_metadata(version_path(registry, name, version))


def read_version_metadata(version_dir: str | os.PathLike) -> dict[str, Any]:
    """metadata.json of a version folder: its lineage, metrics, class names and input."""
    path = join(version_dir, METADATA)
    if not _isfile(path):
        raise FileNotFoundError(f"{path} is missing: not a complete registry version")
    return json.loads(_read_text(path))


def baseline_version(registry: str | os.PathLike, name: str, model_key: str) -> int | None:
    """The version a new model of this name is compared with: the newest one not pushed from
    the model with this artifact key (so pushing a model does not make it its own baseline)."""
    for version in reversed(list_versions(registry, name)):
        if read_metadata(registry, name, version).get("model_key") != model_key:
            return version
    return None


def find_model_key(registry: str | os.PathLike, name: str, model_key: str) -> int | None:
    """The version that already holds the model with this artifact key, if any."""
    for version in list_versions(registry, name):
        if read_metadata(registry, name, version).get("model_key") == model_key:
            return version
    return None


def publish(
    registry: str | os.PathLike,
    name: str,
    fill: Callable[[pathlib.Path], None],
    metadata: dict[str, Any],
    check: Callable[[], str | None] | None = None,
) -> dict[str, Any]:
    """Add a version holding what `fill(folder)` writes, plus metadata.json (with "version"
    and "pushed" added), unless a version already holds metadata["model_key"].

    `check()` runs under the registry's lock, just before the version number is taken, and
    sees the registry as it is then: a reason (str) refuses the push, None lets it through.
    (On an object store, which has no lock, it runs once the number is claimed.)

    Returns {"version", "path", "created"}; created is False when the model was there
    already, or when `check` refused it ("refused" then holds the reason).
    """
    registry = os.fspath(registry)
    if not name or name.startswith(".") or "/" in name:
        raise ValueError(f"Model name {name!r} cannot be a registry folder name; use letters, digits, '-', '_'.")
    model_key = metadata["model_key"]
    existing = find_model_key(registry, name, model_key)
    if existing is not None:
        return {"version": existing, "path": version_path(registry, name, existing), "created": False}
    if is_remote(registry):
        return _publish_remote(registry, name, fill, metadata, check)
    folder = pathlib.Path(registry, name)
    folder.mkdir(parents=True, exist_ok=True)
    # The draft lives beside the versions, on the same file system, so the rename is atomic.
    draft = folder / f".draft-{uuid.uuid4().hex}"
    draft.mkdir()
    try:
        fill(draft)
        checksums.write(draft)  # every file's SHA-256, before the commit marker
        with _locked(folder):
            existing = find_model_key(registry, name, model_key)
            if existing is not None:
                return {"version": existing, "path": str(folder / str(existing)), "created": False}
            refused = check() if check else None
            if refused:
                return {"version": None, "path": "", "created": False, "refused": refused}
            version = _next_number(folder)
            _write_metadata(draft, metadata, version)
            os.rename(draft, folder / str(version))  # fails if the number exists: never overwrites
        return {"version": version, "path": str(folder / str(version)), "created": True}
    finally:
        shutil.rmtree(draft, ignore_errors=True)


def _publish_remote(registry: str, name: str, fill, metadata: dict[str, Any],
                    check) -> dict[str, Any]:
    """Upload every file of the version, then metadata.json: the commit marker."""
    with tempfile.TemporaryDirectory(prefix="edgepipe-push-") as local:
        draft = pathlib.Path(local)
        fill(draft)
        checksums.write(draft)  # uploaded with the files, before metadata.json
        folder = join(registry, name)
        version = _claim_remote(folder)
        refused = check() if check else None
        if refused:  # the claimed number stays unused, as an abandoned push's would
            return {"version": None, "path": "", "created": False, "refused": refused}
        target = join(folder, str(version))
        storage.upload_tree(draft, target)
        _write_metadata(draft, metadata, version)
        storage.write_bytes(join(target, METADATA), (draft / METADATA).read_bytes())
    return {"version": version, "path": target, "created": True}


def _claim_remote(folder: str) -> int:
    """The next free version number, claimed by creating <n>/.claim exclusively; a number a
    racing push claimed first (complete, in progress or abandoned) is skipped, never reused."""
    version = max((int(entry) for entry in _listdir(folder) if is_version_name(entry)),
                  default=0) + 1
    while not storage.create_exclusive(join(folder, str(version), CLAIM),
                                       uuid.uuid4().hex.encode()):
        version += 1
    return version


def _next_number(folder: pathlib.Path) -> int:
    # Count every numbered folder, complete or not, so a number is never reused.
    taken = [int(entry.name) for entry in folder.iterdir() if is_version_name(entry.name)]
    return max(taken, default=0) + 1


def _write_metadata(draft: pathlib.Path, metadata: dict[str, Any], version: int) -> None:
    pushed = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record = {**metadata, "version": version, "pushed": pushed}
    (draft / METADATA).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def _locked(folder: pathlib.Path) -> Iterator[None]:
    """An exclusive lock between pushes of one model (processes and threads alike)."""
    with open(folder / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
