"""The end-to-end fixtures: the quickstart config pointed at the tiny sample, run once per
test session through the `edgepipe` command."""

from __future__ import annotations

import json
import pathlib

import pytest

from edgepipe import cli
from tests.conftest import REPO


@pytest.fixture(scope="session")
def tiny_config(tiny_fashion_mnist, tmp_path_factory) -> pathlib.Path:
    """The quickstart config pointed at the tiny sample, with one short epoch."""
    folder = tmp_path_factory.mktemp("e2e")
    text = (REPO / "configs" / "quickstart.toml").read_text()
    for key, path in tiny_fashion_mnist.items():
        name = pathlib.Path(path).name
        text = text.replace(f'"../data/fashion_mnist/{name}"', f'"{path}"')
    text = text.replace('root = "../artifacts/quickstart"', f'root = "{folder / "root"}"')
    text = text.replace('path = "../artifacts/registry"', f'path = "{folder / "registry"}"')
    text = text.replace("epochs = 8", "epochs = 1").replace("min_accuracy = 0.80", "min_accuracy = 0.30")
    text = text.replace("representative_examples = 200", "representative_examples = 20")
    path = folder / "tiny.toml"
    path.write_text(text)
    return path


def run_cli(*args: str) -> dict:
    assert cli.main(list(args)) == 0
    return latest_summary(args[1])


def latest_summary(config_path: str) -> dict:
    text = pathlib.Path(config_path).read_text()
    root = text.split('root = "', 1)[1].split('"', 1)[0]
    return json.loads((pathlib.Path(root) / "runs" / "latest.json").read_text())


@pytest.fixture(scope="session")
def first_run(tiny_config) -> dict:
    return run_cli("run", str(tiny_config))
