"""Cache keys: a stage runs again only when something that can change its result changed.

key = sha256 of (stage name and version, its validated config, the pipeline seed, the keys of
its input artifacts, the source of its code, and the stage's fingerprint of the world outside
the artifacts: the raw files a source stage reads, the registry version a gate compares with,
the source file of a user's model builder; None when there is none for this config).
Runtime settings (Beam runner, strategy) are deliberately left out.

A stage's code is every file of its own package (the folder of components/<stage>/stage.py,
templates included), every edgepipe module those files import, directly or through each
other (read from their import statements, without importing them), and the modules or
packages its spec's `code` names (what it loads by name, such as the model builders). Editing
the train stage's input pipeline re-runs train, not ingest.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import pathlib
from typing import Any

from edgepipe.pipeline.spec import StageSpec
from edgepipe.pipeline.stage import Artifact, StageConfig

# Imported by stages but left out of their keys: running stages cannot change their results.
ORCHESTRATION = ("edgepipe.pipeline", "edgepipe.api")


def source_files(spec: StageSpec) -> list[pathlib.Path]:
    """The files whose content is part of the stage's key (see the module docstring)."""
    module = spec.module
    # Ordered by group, then by path inside the group, never by absolute path: the key must
    # not change when the checkout (or a copy of the package) lives somewhere else.
    module_file = pathlib.Path(module.__file__)
    if module_file.name == "stage.py":  # a stage package: all of it
        files = _package_files(module_file.parent)
    else:
        files = [module_file]
    for name in spec.code:
        path = _module_file(name)
        if path is None:
            raise ModuleNotFoundError(f"{module.__name__}.SPEC.code names {name!r}, which is "
                                      "not an importable module or package; fix it.")
        files += _package_files(path.parent) if path.name == "__init__.py" else [path]
    # The stage's own package is in already (as files, wherever the folder is).
    own = module.__name__.rsplit(".", 1)[0] if module_file.name == "stage.py" else None
    imported = _imported_modules(files)  # ordered by module name, not by location
    files += [path for name, path in sorted(imported.items()) if path not in files
              and not (own and (name == own or name.startswith(own + ".")))]
    return list(dict.fromkeys(files))


@functools.lru_cache(maxsize=None)
def _module_file(name: str) -> pathlib.Path | None:
    """The source file of an edgepipe module or package (its __init__.py), found by path.
    find_spec locates only `edgepipe.<part>`: a deeper find_spec would import the packages
    on the way, and `edgepipe status` and a cached run must not import TensorFlow through a
    package such as edgepipe.models."""
    parts = name.split(".")
    if parts[0] != "edgepipe":  # a CODE entry outside the project (tests' fake stages)
        spec = importlib.util.find_spec(name)
        return pathlib.Path(spec.origin) if spec and spec.origin else None
    spec = importlib.util.find_spec(".".join(parts[:2]))
    if spec is None or spec.origin is None:
        return None
    path = pathlib.Path(spec.origin)
    if len(parts) <= 2:
        return path
    if path.name != "__init__.py":  # edgepipe.<part> is a module: nothing below it
        return None
    folder = path.parent.joinpath(*parts[2:-1])
    for candidate in (folder / parts[-1] / "__init__.py", folder / f"{parts[-1]}.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(files: list[pathlib.Path]) -> dict[str, pathlib.Path]:
    """{module name: file} of every edgepipe module the Python files import, at any depth and
    inside functions too (stages import TensorFlow-heavy helpers lazily), but the
    orchestration (edgepipe.pipeline, the API): it runs stages and cannot change what they
    compute."""
    found: dict[str, pathlib.Path] = {}
    read: set[pathlib.Path] = set()
    pending = [path for path in files if path.suffix == ".py"]
    while pending:
        path = pending.pop()
        if path in read:
            continue
        read.add(path)
        for name in _imports(path) - found.keys():
            module_path = _module_file(name)
            if module_path is not None:
                found[name] = module_path
                pending.append(module_path)
    return found


def _imports(path: pathlib.Path) -> frozenset[str]:
    """The edgepipe modules an import statement of the file names (`from a import b`: a.b
    when it is a module, and a), orchestration left out."""
    stat = path.stat()
    return _imports_of(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=None)
def _imports_of(path: pathlib.Path, mtime_ns: int, size: int) -> frozenset[str]:
    """_imports, parsed once per version of the file (every stage reads the contracts)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(name for name in names if name.startswith("edgepipe.")
                     and not name.startswith(ORCHESTRATION))


def _package_files(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted((path for path in folder.rglob("*")
                   if path.is_file() and "__pycache__" not in path.parts
                   and path.suffix != ".pyc"), key=lambda path: path.relative_to(folder).parts)


def code_hash(spec: StageSpec) -> str:
    digest = hashlib.sha256()
    for path in source_files(spec):
        digest.update(path.name.encode())  # the name, not the location (see source_files)
        digest.update(path.read_bytes())
    return digest.hexdigest()


def stage_key(
    spec: StageSpec,
    config: StageConfig,
    seed: int,
    inputs: dict[str, Artifact],
) -> tuple[str, dict[str, Any]]:
    """Returns (key, the parts it was computed from) so manifests can show why a key changed."""
    parts = {
        "stage": spec.name,
        "version": spec.version,
        "config": config.model_dump(mode="json"),
        "seed": seed,
        "inputs": {name: artifact.key for name, artifact in sorted(inputs.items())},
        "code": code_hash(spec),
    }
    data = None if spec.fingerprint is None else spec.fingerprint(config, inputs)
    if data is not None:  # None: nothing outside the artifacts for this config
        parts["data"] = data
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16], parts
