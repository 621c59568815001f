"""Cache keys: a stage runs again only when something that can change its result changed.

key = sha256 of (stage name and version, its validated config, the pipeline seed, the keys of
its input artifacts, the source of its own modules, and for a source stage the content of the
raw files it reads). Runtime settings (Beam runner, strategy) are deliberately left out.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import pathlib
from types import ModuleType
from typing import Any

from pipeline.stage import Artifact, StageConfig


def source_files(module: ModuleType) -> list[pathlib.Path]:
    """The stage module's file, every module or package named in its CODE tuple, and the
    non-Python files (templates) named in CODE_FILES, relative to the module's folder."""
    files = [pathlib.Path(module.__file__)]
    files += [pathlib.Path(module.__file__).parent / name for name in getattr(module, "CODE_FILES", ())]
    for name in getattr(module, "CODE", ()):
        # find_spec locates the file without running it: `edgepipe status` and a cached run
        # must not import TensorFlow through a package such as models/.
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"{module.__name__}.CODE names {name!r}, which is not an "
                                      "importable module or package; fix the CODE tuple.")
        path = pathlib.Path(spec.origin)
        if path.name == "__init__.py":
            files.extend(sorted(path.parent.rglob("*.py")))
        else:
            files.append(path)
    return sorted(set(files))


def code_hash(module: ModuleType) -> str:
    digest = hashlib.sha256()
    for path in source_files(module):
        digest.update(path.name.encode())
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
    if fingerprint is not None:
        parts["data"] = fingerprint(config)
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16], parts
