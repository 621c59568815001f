"""The Python API as a notebook uses it: `import edgepipe`, run, read the result; whatever
files the user keeps beside the notebook."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import venv

import pytest

import edgepipe
from tests.conftest import REPO

SHADOWS = ("models", "pipeline", "components", "serving", "contracts")


def test_run_returns_the_summary_metrics_and_the_deployable_model(first_run, tiny_config):
    result = edgepipe.run(tiny_config)  # everything is cached after the module's first run
    assert result.status == "succeeded"
    assert result.summary == json.loads((result.root / "runs" / "latest.json").read_text())
    assert {stage["status"] for stage in result.summary["stages"]} == {"cached"}
    assert result.metrics["evaluate"] == first_run["stages"][3]["metrics"]
    assert result.blessed == first_run["stages"][3]["metrics"]["blessed"]
    deployable = result.metrics["quantize"]["deployable"]
    assert result.tflite_path.name == deployable["path"] and result.tflite_path.is_file()
    assert result.report_path.name == "report.html" and result.report_path.is_file()


def test_a_dict_config_with_overrides_and_chosen_stages(first_run, tiny_config):
    tables = edgepipe.api.config_module.read(tiny_config)
    for table in tables.values():  # the file's relative paths are relative to its folder
        for key, value in table.items():
            if isinstance(value, str) and value.startswith(".."):
                table[key] = str((tiny_config.parent / value).resolve())
    result = edgepipe.run(tables, overrides={"report.low_confidence_examples": 3},
                          stages=["report"], progress=False)
    assert [stage["name"] for stage in result.summary["stages"]] == ["report"]
    assert result.summary["stages"][0]["status"] == "ran"
    with pytest.raises(edgepipe.ConfigError, match=r"\[train\] epochs"):
        edgepipe.run(tables, overrides={"train.epochs": "many"})


def test_version_and_status_from_the_command_line(tmp_path):
    version = subprocess.run([sys.executable, "-m", "edgepipe", "--version"], capture_output=True,
                             text=True, check=True).stdout
    assert version.strip() == f"edgepipe {edgepipe.__version__}" and edgepipe.__version__[0].isdigit()


SCRIPT = """
import edgepipe
for entry in edgepipe.status({config!r}, root={root!r}):
    print(entry["stage"], entry["key"])
"""


def test_user_files_named_like_the_parts_change_nothing(tmp_path):
    """A notebook folder with its own models.py, pipeline.py... on sys.path: `import edgepipe`
    and `edgepipe status` load the project's code, and cache keys hash none of the user's."""
    notebook = tmp_path / "notebook"
    notebook.mkdir()
    for name in SHADOWS:
        (notebook / f"{name}.py").write_text(f"raise ImportError('the user\\'s {name}.py was imported')\n")
    config = str(REPO / "configs" / "quickstart.toml")
    script = SCRIPT.format(config=config, root=str(tmp_path / "root"))
    expected = {entry["stage"]: entry["key"]
                for entry in edgepipe.status(config, root=str(tmp_path / "root"))}
    from_notebook = subprocess.run([sys.executable, "-c", script], cwd=notebook,
                                   capture_output=True, text=True)
    assert from_notebook.returncode == 0, from_notebook.stderr
    assert dict(line.split() for line in from_notebook.stdout.splitlines()) == expected
    command = subprocess.run([str(pathlib.Path(sys.executable).parent / "edgepipe"), "status",
                              config, "--root", str(tmp_path / "root")], cwd=notebook,
                             capture_output=True, text=True)
    assert command.returncode == 0, command.stderr
    assert all(key in command.stdout for key in expected.values())


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_the_readme_python_example_runs_as_written_in_a_fresh_venv(tmp_path):
    """A new user's steps: a new virtual environment, `pip install` of the project (not
    editable), and the README's example run in a folder holding the configs and data."""
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(REPO)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "work"
    for folder in ("configs", "data"):
        shutil.copytree(REPO / folder, work / folder)
    example = readme_example()
    result = subprocess.run([str(python), "-c", example], cwd=work, capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    status, accuracy = result.stdout.splitlines()[0].split()
    assert status == "succeeded" and 0.5 < float(accuracy) <= 1.0
    deployable = next(line for line in result.stdout.splitlines() if line.startswith("deploy:"))
    assert pathlib.Path(deployable.split(": ", 1)[1]).is_file()
    assert (work / "runs" / "notebook" / "runs" / "latest.json").is_file()
    # The installed package ran, not a source checkout.
    where = subprocess.run([str(python), "-c", "import edgepipe.pipeline; "
                            "print(edgepipe.pipeline.__file__)"], cwd=work, capture_output=True,
                           text=True, check=True).stdout
    assert str(environment) in where
