"""The walls between the parts, read from every module's imports, and the installed layout.

    serving     imports nothing from pipeline, components, models (or the edgepipe API)
    pipeline    imports nothing from models or components (stages only by the name dag.py gives)
    models      imports nothing from components, serving or pipeline
    contracts   imports none of the project's other parts, and no TensorFlow, Keras or Beam
    components  import nothing from serving; a stage package never imports another stage's
                package (what two stages share lives in components/shared or contracts);
                components/tflite_metadata imports nothing else of the project and no
                TensorFlow; inside components/quantize only stage.py calls the other modules
                (each is a leaf: device_checks.py owns mediapipe_compat.py)
    everything  imports the project only as edgepipe.*, never as a bare top-level name
                (`pipeline`, `models`, ...), which a user's own file could shadow
"""

from __future__ import annotations

import ast
import pathlib
import shutil
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from edgepipe.pipeline import dag
from tests.conftest import REPO

# Repository folder -> the package it installs as.
PARTS = {"edgepipe": "edgepipe", "pipeline": "edgepipe.pipeline", "components":
         "edgepipe.components", "models": "edgepipe.models", "serving": "edgepipe.serving",
         "contracts": "edgepipe.contracts"}
HEAVY = ("tensorflow", "tf_keras", "keras", "apache_beam", "tensorflow_datasets",
         "tensorflow_model_optimization")
BARE = ("pipeline", "components", "models", "serving", "contracts")
# part -> the parts it must not import ("api": the edgepipe package's own API and CLI,
# "heavy": TensorFlow, Keras or Beam).
FORBIDDEN = {
    "serving": {"pipeline", "components", "models", "api"},
    "pipeline": {"models", "components"},
    "models": {"components", "serving", "pipeline", "api"},
    "contracts": {"pipeline", "components", "models", "serving", "api", "heavy"},
    "components": {"serving", "api"},
}
STAGES = tuple(node.stage for node in dag.CLASSIFICATION)  # the DAG's list, optional ones too
# The quantize stage's flow is one-directional: stage.py orchestrates leaves (module -> the
# quantize modules it may import).
# generation.py orchestrates the generation task's variants (its step signature), so it uses
# the measurements and the deploy policy's rule as stage.py does.
QUANTIZE_IMPORTS = {"stage": None, "device_checks": {"mediapipe_compat"},
                    "generation": {"deploy_policy", "measure"}}


def imported_names(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (function-level too);
    `from package import name` counts as importing package.name."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return names


def part_of(name: str) -> str | None:
    """Which part an imported name belongs to, or None (the standard library, numpy...)."""
    top, _, rest = name.partition(".")
    if top in HEAVY:
        return "heavy"
    if top != "edgepipe":
        return None
    second = rest.split(".")[0]
    return second if second in BARE else "api"


def violations(root: pathlib.Path) -> list[str]:
    """Every import that breaks a wall, as 'file:line: what (why)'."""
    found = []
    for folder in PARTS:
        for path in sorted((root / folder).rglob("*.py")):
            stage = path.relative_to(root / folder).parts[0] if folder == "components" else None
            for line, name in imported_names(path):
                where = f"{path.relative_to(root)}:{line}"
                if name.split(".")[0] in BARE:
                    found.append(f"{where}: imports bare {name!r}; import edgepipe.{name}")
                if part_of(name) in FORBIDDEN.get(folder, ()):
                    found.append(f"{where}: {folder} imports {name} ({part_of(name)})")
                if stage in STAGES:
                    for other in STAGES:
                        if other != stage and name.startswith(f"edgepipe.components.{other}."):
                            found.append(f"{where}: stage {stage} imports stage {other}'s {name}")
                if stage == "tflite_metadata" and (part_of(name) == "heavy" or (
                        name.startswith("edgepipe.")
                        and not name.startswith("edgepipe.components.tflite_metadata."))):
                    found.append(f"{where}: tflite_metadata imports {name} (it stands alone)")
                if stage == "quantize" and name.startswith("edgepipe.components.quantize."):
                    allowed = QUANTIZE_IMPORTS.get(path.stem, set())
                    if allowed is not None and name.split(".")[3] not in allowed:
                        found.append(f"{where}: quantize leaf {path.stem} imports {name} "
                                     "(only stage.py calls the other quantize modules)")
    return found


def test_no_module_breaks_a_wall():
    assert violations(REPO) == []


def test_an_added_forbidden_import_is_found(tmp_path):
    """The check itself: a copy of the tree with forbidden imports added fails it."""
    assert violations(REPO) == []
    for folder in PARTS:
        shutil.copytree(REPO / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    runtime = tmp_path / "serving" / "runtime.py"
    runtime.write_text(runtime.read_text() + "\nfrom edgepipe.components.shared import examples_io\n")
    litert = tmp_path / "contracts" / "litert.py"
    litert.write_text(litert.read_text() + "\n\ndef late():\n    import tensorflow\n")
    push = tmp_path / "components" / "push" / "stage.py"
    push.write_text(push.read_text() + "\nfrom edgepipe.components.evaluate import gates\n")
    tune = tmp_path / "components" / "tune" / "stage.py"  # an optional stage is walled too
    tune.write_text(tune.read_text() + "\nfrom edgepipe.components.train import fit\n")
    writer = tmp_path / "components" / "tflite_metadata" / "writer.py"
    writer.write_text(writer.read_text() + "\nfrom edgepipe.contracts import artifacts\n")
    measure = tmp_path / "components" / "quantize" / "measure.py"
    measure.write_text(measure.read_text() + "\nfrom edgepipe.components.quantize import qat\n")
    found = "\n".join(violations(tmp_path))
    assert "tflite_metadata imports edgepipe.contracts.artifacts" in found
    assert "quantize leaf measure imports edgepipe.components.quantize.qat" in found
    assert "serving/runtime.py:" in found and "edgepipe.components.shared" in found
    assert "contracts/litert.py:" in found and "tensorflow (heavy)" in found
    assert "stage push imports stage evaluate" in found
    assert "stage tune imports stage train" in found


def test_every_package_folder_is_installed():
    """A package folder missing from pyproject.toml would be absent from a real install."""
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(settings["packages"])
    assert settings["package-dir"] == {package: folder for folder, package in PARTS.items()}
    on_disk = {
        ".".join([PARTS[folder], *init.parent.relative_to(REPO / folder).parts])
        for folder in PARTS for init in (REPO / folder).rglob("__init__.py")
    }
    assert on_disk == listed


MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
# Modules (exempt as a whole) and functions allowed past the limits, with the reason.
EXCEPTIONS: dict[str, str] = {
    "components/tflite_metadata/metadata_schema_generated.py":
        "flatc's output for the vendored TFLite metadata schema, never edited by hand "
        "(tests/components/test_tflite_metadata.py regenerates it and compares)",
}


def test_modules_and_functions_stay_small():
    """Small modules with one job, functions a reader can hold in mind."""
    too_big = []
    for folder in ("pipeline", "components", "serving", "models", "contracts", "edgepipe"):
        for path in sorted((REPO / folder).rglob("*.py")):
            name = str(path.relative_to(REPO))
            if name in EXCEPTIONS:
                continue  # a module listed is exempt as a whole (generated code)
            lines = path.read_text().count("\n")
            if lines > MAX_MODULE_LINES and name not in EXCEPTIONS:
                too_big.append(f"{name}: {lines} lines")
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    qualified = f"{name}:{node.name}"
                    if length > MAX_FUNCTION_LINES and qualified not in EXCEPTIONS:
                        too_big.append(f"{qualified}: {length} lines")
    assert too_big == []


IMPORT_PROBE = """
import importlib, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = importlib.import_module(name).__file__
    except ModuleNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


def test_one_import_path_the_installed_names_and_nothing_else(tmp_path):
    """From outside the checkout (a user's notebook folder) the installed parts import as
    edgepipe.pipeline, edgepipe.components, ... from the checkout's folders, and the
    repository's other folders do not become edgepipe.tests, edgepipe.configs or a second copy
    of the API (edgepipe.edgepipe.api, whose Result would be another class)."""
    import json
    import subprocess

    real = ["edgepipe.pipeline.dag", "edgepipe.components.report", "edgepipe.contracts.artifacts",
            "edgepipe.serving", "edgepipe.models"]
    bogus = ["edgepipe.tests", "edgepipe.benchmarks", "edgepipe.configs", "edgepipe.edgepipe.api",
             "edgepipe.data"]
    env = {key: value for key, value in __import__("os").environ.items()
           if key != "PYTHONPATH"}
    for cwd in (tmp_path, REPO):  # a notebook elsewhere, and the checkout itself
        done = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *real, *bogus], cwd=cwd,
                              env=env, capture_output=True, text=True, check=True)
        found = json.loads(done.stdout)
        for name in real:
            folder = name.split(".")[1]
            assert found[name].startswith(str(REPO / folder)), (cwd, name, found[name])
        assert {name: found[name] for name in bogus} == dict.fromkeys(bogus), cwd
