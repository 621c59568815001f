"""The Dockerfile cannot be built here (no Docker engine), so its install steps are checked
against pyproject.toml, and the serving image's file set is run on its own."""

from __future__ import annotations

import ast
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

from tests.conftest import REPO
from tests.serving.conftest import call, pushed_registry  # noqa: F401 (a fixture)

DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DEPENDENCIES = {Requirement(text).name: Requirement(text) for text in PYPROJECT["project"]["dependencies"]}
# Import names of the project's dependencies, and of the repo's own packages.
IMPORT_NAMES = {
    "tensorflow": "tensorflow", "tf-keras": "tf_keras", "tensorboard": "tensorboard",
    "tensorflow-model-optimization": "tensorflow_model_optimization", "apache-beam": "apache_beam",
    "tensorflow-datasets": "tensorflow_datasets", "tensorflow-metadata": "tensorflow_metadata",
    "ai-edge-litert": "ai_edge_litert", "numpy": "numpy", "pydantic": "pydantic",
    "matplotlib": "matplotlib", "jinja2": "jinja2", "tomli": "tomli",
    "uvicorn": "uvicorn", "h11": "h11", "prometheus-client": "prometheus_client",
}


def stages() -> dict[str, list[tuple[str, str]]]:
    """target name -> [(instruction, arguments)], line continuations joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: dict[str, list] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            current = result.setdefault(arguments.split(" AS ")[-1].strip(), [])
        current.append((instruction.upper(), arguments.strip()))
    return result


def pip_requirements(stage: list[tuple[str, str]]) -> list[str]:
    found = []
    for instruction, arguments in stage:
        if instruction == "RUN" and "pip install" in arguments:
            words = shlex.split(arguments.split("pip install", 1)[1].split("&&")[0])
            found += [word for word in words if not word.startswith("-")]
    return found


def copied(stage: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(source in the repository, destination relative to the image's working directory)
    of each COPY; a destination ending in / receives the source under its own name."""
    pairs = []
    for instruction, arguments in stage:
        if instruction != "COPY":
            continue
        *sources, destination = arguments.split()
        for source in sources:
            target = destination + pathlib.Path(source).name if destination.endswith("/") else destination
            pairs.append((source, str(pathlib.PurePosixPath(target))))
    return pairs


def test_both_targets_exist_and_share_the_python_version():
    targets = stages()
    assert set(targets) == {"pipeline", "serving"}
    versions = {re.search(r"python:?(3\.\d+)", targets[name][0][1])[1] for name in targets}
    assert versions == {"3.11"}
    assert Requirement(f"x{PYPROJECT['project']['requires-python']}").specifier.contains("3.11")


def test_pipeline_image_installs_the_project_itself():
    stage = stages()["pipeline"]
    assert pip_requirements(stage)[0] == "/tmp/edgepipe-src[gcs]", (
        "the pipeline image installs pyproject.toml's dependencies, no list of its own")
    folders = set(PYPROJECT["tool"]["setuptools"]["package-dir"].values())
    sources = {source for source, destination in copied(stage)
               if destination.startswith("/tmp/edgepipe-src")}
    assert {"pyproject.toml", "README.md", *folders} <= sources


def test_pipeline_image_has_the_kfp_executor_of_the_compiling_sdk():
    """Compiled tasks run `python3 -m kfp.dsl.executor_main` in the image without installing
    kfp first (install_kfp_package=False): the image's kfp is the kfp extra's exact pin."""
    installs = pip_requirements(stages()["pipeline"])[1:]
    extra = {Requirement(text).name: Requirement(text)
             for text in PYPROJECT["project"]["optional-dependencies"]["kfp"]}
    assert [Requirement(text).name for text in installs] == ["kfp"]
    assert str(Requirement(installs[0]).specifier) == str(extra["kfp"].specifier)
    assert str(extra["kfp"].specifier).startswith("==")
    from importlib.metadata import version
    assert f"=={version('kfp')}" == str(extra["kfp"].specifier)  # what compiles the specs here
    kfp_line = next(arguments for instruction, arguments in stages()["pipeline"]
                    if instruction == "RUN" and "kfp==" in arguments)
    assert "--no-deps" in kfp_line


def test_serving_image_pins_exactly_what_pyproject_pins_and_no_tensorflow():
    requirements = [Requirement(text) for text in pip_requirements(stages()["serving"])]
    assert {requirement.name for requirement in requirements} == {
        "ai-edge-litert", "numpy", "uvicorn", "h11", "prometheus-client"}
    for name in ("uvicorn", "h11"):  # serving/http_protocol.py uses uvicorn internals
        assert str(DEPENDENCIES[name].specifier).startswith("=="), f"{name} must be pinned exactly"
    for requirement in requirements:
        assert requirement.specifier == DEPENDENCIES[requirement.name].specifier, (
            f"the serving image pins {requirement} but pyproject.toml says {DEPENDENCIES[requirement.name]}")


def imports_of(path: pathlib.Path) -> set[str]:
    """Module-level imports: what importing the module needs. Imports inside functions are the
    optional paths (TensorFlow for the SavedModel runtime and gs:// registries, TFDS for reading
    examples), which the serving image leaves out on purpose."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def build_image_folder(stage, folder: pathlib.Path) -> pathlib.Path:
    """The files a target copies, laid out as in the image's working directory."""
    for source, destination in copied(stage):
        target = folder / destination
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.write_bytes((REPO / source).read_bytes())
    return folder


def test_serving_image_holds_every_module_the_service_imports(tmp_path):
    stage = stages()["serving"]
    image = build_image_folder(stage, tmp_path / "image")
    installed = {IMPORT_NAMES[Requirement(text).name] for text in pip_requirements(stage)}
    for module in sorted(image.rglob("*.py")):
        for name in imports_of(module):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in installed:
                continue
            parts = name.split(".")
            # The longest prefix that is a file of the image is the module imported.
            files_of_name = [path for k in range(len(parts), 0, -1)
                             for path in (pathlib.Path(*parts[:k]).with_suffix(".py"),
                                          pathlib.Path(*parts[:k], "__init__.py"))
                             if (image / path).is_file()]
            assert files_of_name, (f"{module.relative_to(image)} imports {name}, which is "
                                   "neither installed nor copied into the serving image")


BOOT = """
import runpy, sys
# Only what the serving image holds: its folder and the installed packages.
sys.path = [{folder!r}] + [path for path in sys.path if "site-packages" in path or "python3" in path]
sys.meta_path = [finder for finder in sys.meta_path if "editable" not in repr(finder)]
BLOCKED = {blocked!r}
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{{name}} is not in the serving image")
sys.meta_path.insert(0, Absent())
sys.argv = ["serving", *sys.argv[1:]]
runpy.run_module("edgepipe.serving", run_name="__main__", alter_sys=True)
"""


def test_serving_image_files_alone_serve_a_pushed_model(tmp_path, pushed_registry):
    stage = stages()["serving"]
    image = build_image_folder(stage, tmp_path / "image")
    installed = {IMPORT_NAMES[Requirement(text).name] for text in pip_requirements(stage)}
    blocked = sorted(set(IMPORT_NAMES.values()) - installed | {"pipeline", "models", "tests"})
    assert sorted(path.name for path in (image / "edgepipe").iterdir()) == [
        "__init__.py", "contracts", "serving"]
    (image / "boot.py").write_text(BOOT.format(folder=str(image), blocked=blocked))

    # The image's entrypoint, `python -m edgepipe.serving`, with nothing but the image's files.
    command = [sys.executable, str(image / "boot.py"), "--registry", str(pushed_registry), "--port", "0"]
    process = subprocess.Popen(command, cwd=image, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "listening on" in line, process.stderr.read() if process.poll() is not None else line
        base = re.search(r"(http://\S+)", line)[1]
        status, answer = call(base, "POST", "/v1/models/tests:predict", {"instances": [[[[0]] * 28] * 28]})
        assert status == 200 and len(answer["predictions"][0]) == 10
    finally:
        process.terminate()
        process.wait()
