"""Cache keys: a stage runs again only when something that can change its result changed.

key = sha256 of (stage name and version, its validated config, the pipeline seed, the keys of
its input artifacts, the source of its code, and the stage's fingerprint of the world outside
the artifacts: the raw files a source stage reads, the registry version a gate compares with,
the source file of a user's model builder; None when there is none for this config).
Runtime settings (Beam runner, strategy) are deliberately left out.

A stage's code is every file of its own package (the folder of components/<stage>/stage.py,
templates included) plus the shared modules or packages its CODE tuple names.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pathlib
from types import ModuleType
from typing import Any

from edgepipe.pipeline.stage import Artifact, StageConfig


def source_files(module: ModuleType) -> list[pathlib.Path]:
    """The files whose content is part of the stage's key (see the module docstring)."""
    # Ordered by group, then by path inside the group, never by absolute path: the key must
    # not change when the checkout (or a copy of the package) lives somewhere else.
    module_file = pathlib.Path(module.__file__)
    if module_file.name == "stage.py":  # a stage package: all of it
        files = _package_files(module_file.parent)
    else:
        files = [module_file]
    for name in getattr(module, "CODE", ()):
        # find_spec locates the file without running it: `edgepipe status` and a cached run
        # must not import TensorFlow through a package such as edgepipe.models.
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"{module.__name__}.CODE names {name!r}, which is not an "
                                      "importable module or package; fix the CODE tuple.")
        path = pathlib.Path(spec.origin)
        files += _package_files(path.parent) if path.name == "__init__.py" else [path]
    return list(dict.fromkeys(files))


def _package_files(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted((path for path in folder.rglob("*")
                   if path.is_file() and "__pycache__" not in path.parts
                   and path.suffix != ".pyc"), key=lambda path: path.relative_to(folder).parts)


def code_hash(module: ModuleType) -> str:
    digest = hashlib.sha256()
    for path in source_files(module):
        digest.update(path.name.encode())  # the name, not the location (see source_files)
        digest.update(path.read_bytes())
    return digest.hexdigest()


def stage_key(
    module: ModuleType,
    config: StageConfig,
    seed: int,
    inputs: dict[str, Artifact],
) -> tuple[str, dict[str, Any]]:
    """Returns (key, the parts it was computed from) so manifests can show why a key changed."""
    parts = {
        "stage": module.NAME,
        "version": module.VERSION,
        "config": config.model_dump(mode="json"),
        "seed": seed,
        "inputs": {name: artifact.key for name, artifact in sorted(inputs.items())},
        "code": code_hash(module),
    }
    fingerprint = getattr(module, "fingerprint", None)
    data = None if fingerprint is None else fingerprint(config, inputs)
    if data is not None:  # None: nothing outside the artifacts for this config
        parts["data"] = data
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16], parts
