"""Cache keys change exactly when something that can change a stage's result changes."""

import pathlib
import shutil

from edgepipe.pipeline import cache, config, dag
from edgepipe.pipeline.stage import Artifact

REPO = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "configs" / "quickstart.toml"


def keys(**kwargs) -> dict[str, str]:
    loaded = config.load(QUICKSTART, dag.specs(), **kwargs)
    from edgepipe.pipeline import runner

    return {step.node.stage: step.key for step in runner.plan(loaded)}


def test_keys_are_stable_and_ignore_runtime_settings(tmp_path):
    base = keys()
    assert base == keys()
    assert base == keys(beam_options=["direct_num_workers=2"], root=str(tmp_path))
    assert base == keys(overrides=["runtime.strategy=default"])


def test_a_config_change_moves_only_its_stage_and_downstream():
    base = keys()
    changed = keys(overrides=["train.epochs=3"])
    same = [name for name in base if base[name] == changed[name]]
    assert same == ["ingest", "statistics"]
    assert dag.downstream("train") == ["evaluate", "quantize", "report", "push"]


def test_seed_changes_every_key():
    base = keys()
    reseeded = keys(overrides=["pipeline.seed=43"])
    assert all(base[name] != reseeded[name] for name in base)


def test_raw_data_content_is_part_of_the_ingest_key(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(REPO / "data" / "fashion_mnist", data)
    overrides = [
        f'ingest.{key}="{data}/{name}"'
        for key, name in [
            ("train_images", "train-images-idx3-ubyte.gz"),
            ("train_labels", "train-labels-idx1-ubyte.gz"),
            ("test_images", "t10k-images-idx3-ubyte.gz"),
            ("test_labels", "t10k-labels-idx1-ubyte.gz"),
        ]
    ]
    before = keys(overrides=overrides)
    labels = data / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes() + b"\0")
    after = keys(overrides=overrides)
    assert after["ingest"] != before["ingest"]
    assert after["train"] != before["train"]


def test_stage_source_is_part_of_the_key(tmp_path, monkeypatch):
    spec = dag.specs()["evaluate"]
    module = spec.module
    loaded = config.load(QUICKSTART, dag.specs())
    inputs = {"examples": Artifact(tmp_path, "Examples", "k1", {}), "model": Artifact(tmp_path, "Model", "k2", {})}
    key, parts = cache.stage_key(spec, loaded.stages["evaluate"], 0, inputs)
    copy = tmp_path / "evaluate.py"
    copy.write_text(pathlib.Path(module.__file__).read_text() + "\n# a code change\n")
    monkeypatch.setattr(module, "__file__", str(copy))
    changed, _ = cache.stage_key(spec, loaded.stages["evaluate"], 0, inputs)
    assert changed != key
    assert parts["inputs"] == {"examples": "k1", "model": "k2"}


def test_every_file_of_the_stage_package_and_nothing_else_is_in_its_key(tmp_path, monkeypatch):
    """Editing a helper of a stage's package (evaluate's gates.py) re-runs the stage; editing
    another stage's package (report's template) does not."""
    spec = dag.specs()["evaluate"]
    module = spec.module
    loaded = config.load(QUICKSTART, dag.specs())
    inputs = {"examples": Artifact(tmp_path, "Examples", "k1", {}),
              "model": Artifact(tmp_path, "Model", "k2", {})}
    key, _ = cache.stage_key(spec, loaded.stages["evaluate"], 0, inputs)
    package = pathlib.Path(module.__file__).parent
    copy = tmp_path / "evaluate"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(module, "__file__", str(copy / "stage.py"))
    assert cache.stage_key(spec, loaded.stages["evaluate"], 0, inputs)[0] == key
    (copy / "gates.py").write_text((copy / "gates.py").read_text() + "\n# changed\n")
    assert cache.stage_key(spec, loaded.stages["evaluate"], 0, inputs)[0] != key
    report_files = cache.source_files(dag.specs()["report"])
    assert any(path.name == "template.html" for path in report_files)
    assert not any("report" in path.parts for path in cache.source_files(spec))


def _code_of(stage: str) -> set[str]:
    """The stage's key files as paths inside the edgepipe tree (components/shared/png.py)."""
    return {"/".join(path.relative_to(REPO).parts) for path in
            cache.source_files(dag.specs()[stage]) if path.is_relative_to(REPO)}


def test_a_stage_key_covers_the_shared_code_it_imports_and_no_other():
    """Editing the input pipeline re-runs train and quantize (QAT fine-tunes through it) but
    not ingest; editing the PNG codec re-runs ingest and statistics; editing the runner
    re-runs nothing. Imports inside functions count (train imports its fit helper lazily)."""
    ingest, statistics, train, quantize = map(_code_of,
                                              ("ingest", "statistics", "train", "quantize"))
    assert "components/shared/png.py" in ingest & statistics
    assert "components/shared/input_pipeline.py" in train & quantize
    assert "components/shared/input_pipeline.py" not in ingest | statistics
    assert "models/cnn.py" in train and "models/cnn.py" not in ingest
    assert "contracts/storage.py" in ingest  # through contracts.artifacts
    assert not any(path.startswith("pipeline/") or path == "edgepipe/api.py"
                   for stage in dag.specs() for path in _code_of(stage))


def test_a_stage_key_does_not_import_tensorflow():
    import subprocess
    import sys

    script = ("import sys\nfrom edgepipe.pipeline import cache, dag\n"
              "[cache.code_hash(spec) for spec in dag.specs().values()]\n"
              "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, check=True)
    assert result.stdout.strip() == "False"
