"""Shared fixtures: a tiny real Fashion-MNIST sample and each stage's artifact built from it.

The chain of fixtures runs the real stages (Beam, Keras, the TFLite converter) once per test
session on 300 training and 100 test images cut from data/fashion_mnist, so every stage test
works on real artifacts without paying for the whole quickstart.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import pathlib
import struct

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import pytest  # noqa: E402

from edgepipe.pipeline.stage import Artifact, Context, Runtime, UpstreamStage  # noqa: E402
from edgepipe.pipeline.store import Store  # noqa: E402

# Fixture modules beside this one (regression: a generated table through every stage).
pytest_plugins = ["tests.regression_fixtures", "tests.detection_fixtures",
                  "tests.forecast_fixtures", "tests.generation_fixtures", "tests.audio_fixtures"]

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "fashion_mnist"
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def write_idx_subset(source: pathlib.Path, target: pathlib.Path, count: int) -> None:
    """Write the first `count` records of an IDX gz file as a new, valid IDX gz file."""
    raw = gzip.decompress(source.read_bytes())
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    record = 1
    for dim in dims[1:]:
        record *= dim
    header = struct.pack(">I", magic) + struct.pack(f">{ndim}I", count, *dims[1:])
    body = raw[4 + 4 * ndim : 4 + 4 * ndim + count * record]
    target.write_bytes(gzip.compress(header + body, mtime=0))


@pytest.fixture(scope="session")
def tiny_fashion_mnist(tmp_path_factory) -> dict[str, str]:
    """IDX gz files with the first 300 train and 100 test records of the committed sample."""
    folder = tmp_path_factory.mktemp("tiny_fashion_mnist")
    files = {}
    for split, prefix, count in (("train", "train", 300), ("test", "t10k", 100)):
        for part in ("images", "labels"):
            name = f"{prefix}-{part}-idx{3 if part == 'images' else 1}-ubyte.gz"
            write_idx_subset(SAMPLE / name, folder / name, count)
            files[f"{split}_{part}"] = str(folder / name)
    return files


class StageRunner:
    """Runs a stage module through the real Store (staging, manifests, atomic commit)."""

    def __init__(self, root: pathlib.Path):
        self.store = Store(root)
        self.count = 0

    def __call__(self, stage_name: str, inputs: dict[str, Artifact], config: dict, seed: int = 7):
        """(the stage's properties, its committed artifacts)."""
        result, artifacts = self.result(stage_name, inputs, config, seed)
        return result.properties, artifacts

    def result(self, stage_name: str, inputs: dict[str, Artifact], config: dict, seed: int = 7):
        """(the stage's StageResult: properties and signals, its committed artifacts)."""
        spec = importlib.import_module(f"edgepipe.components.{stage_name}.stage").SPEC
        parsed = spec.config.model_validate(config, context={"base_dir": REPO})
        self.count += 1
        key = f"test{self.count:04d}"
        run_id = f"test-run-{self.count}"
        context = Context(
            pipeline_name="tests",
            run_id=run_id,
            seed=seed,
            runtime=Runtime(),
            scratch_dir=self.store.scratch_dir(stage_name, key),
            upstream=self.upstream(inputs, run_id),
        )
        return self.store.execute(spec, key, inputs, parsed, context)


    @staticmethod
    def upstream(inputs: dict[str, Artifact], run_id: str) -> dict[str, UpstreamStage]:
        """What the runner would tell the stage of the stages its inputs come from: their
        records in this store (an artifact copied out of the store has none)."""
        found = {}
        for artifact in inputs.values():
            record = pathlib.Path(artifact.path).parent / "manifest.json"
            if record.is_file():
                upstream = UpstreamStage.of(json.loads(record.read_text()), run_id)
                found[upstream.stage] = upstream
        return found


@pytest.fixture(scope="session")
def run_stage(tmp_path_factory) -> StageRunner:
    return StageRunner(tmp_path_factory.mktemp("store"))


def ingest_config(files: dict[str, str]) -> dict:
    return {
        "source": "idx",
        "train_images": files["train_images"],
        "train_labels": files["train_labels"],
        "test_images": files["test_images"],
        "test_labels": files["test_labels"],
        "class_names": list(CLASS_NAMES),
        "validation_fraction": 0.2,
    }


@pytest.fixture(scope="session")
def examples_artifact(run_stage, tiny_fashion_mnist) -> Artifact:
    _, artifacts = run_stage("ingest", {}, ingest_config(tiny_fashion_mnist))
    return artifacts["examples"]


@pytest.fixture(scope="session")
def statistics_artifacts(run_stage, examples_artifact) -> dict[str, Artifact]:
    _, artifacts = run_stage("statistics", {"examples": examples_artifact}, {})
    return artifacts


@pytest.fixture(scope="session")
def model_artifact(run_stage, examples_artifact, statistics_artifacts) -> Artifact:
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    _, artifacts = run_stage("train", inputs, {"epochs": 2, "batch_size": 32})
    return artifacts["model"]


@pytest.fixture(scope="session")
def evaluation_artifact(run_stage, examples_artifact, model_artifact) -> Artifact:
    inputs = {"examples": examples_artifact, "model": model_artifact}
    _, artifacts = run_stage("evaluate", inputs, {"min_accuracy": 0.0})
    return artifacts["evaluation"]


@pytest.fixture(scope="session")
def tflite_artifact(run_stage, examples_artifact, model_artifact) -> Artifact:
    inputs = {"examples": examples_artifact, "model": model_artifact}
    _, artifacts = run_stage("quantize", inputs, {"representative_examples": 50})
    return artifacts["tflite"]


# ---------------------------------------------------------------- sequences (data/japanese_vowels)

JAPANESE_VOWELS = REPO / "data" / "japanese_vowels"


@pytest.fixture(scope="session")
def vowels_examples(run_stage):
    """(properties, Examples artifact) of the full JapaneseVowels .ts files, ingested once."""
    properties, artifacts = run_stage("ingest", {}, {
        "source": "ts",
        "train": str(JAPANESE_VOWELS / "JapaneseVowels_TRAIN.ts"),
        "test": str(JAPANESE_VOWELS / "JapaneseVowels_TEST.ts"),
    })
    return properties, artifacts["examples"]


LSTM_VARIANTS = ("float32", "dynamic_range", "float16", "int8", "qat_int8")


@pytest.fixture(scope="session")
def vowels_model(run_stage, vowels_examples):
    """(examples, model) artifacts: JapaneseVowels through ingest, statistics, 1 epoch of train."""
    _, examples = vowels_examples
    _, statistics = run_stage("statistics", {"examples": examples}, {})
    _, trained = run_stage("train", {"examples": examples, **statistics},
                           {"model": "lstm", "epochs": 1, "batch_size": 32,
                            "model_options": {"units": [32]}})
    return examples, trained["model"]


@pytest.fixture(scope="session")
def vowels_tflite(run_stage, vowels_model):
    examples, model = vowels_model
    config = {"variants": list(LSTM_VARIANTS), "representative_examples": 50,
              "max_test_examples": 60}
    properties, artifacts = run_stage("quantize", {"examples": examples, "model": model}, config)
    return properties, artifacts["tflite"]


# ---------------------------------------------------------------- text (data/fortunes)

FORTUNES = REPO / "data" / "fortunes"
FORTUNE_CATEGORIES = ("fortunes", "literature", "riddles")
TEXT_RECORDS_PER_CATEGORY = 30


@pytest.fixture(scope="session")
def tiny_fortunes(tmp_path_factory) -> pathlib.Path:
    """A text_dir tree with the first 30 records of each committed fortune file, in the
    fortune format ("%" lines between records), so tests read real texts quickly."""
    from edgepipe.components.ingest.sources.text_dir import split_records

    root = tmp_path_factory.mktemp("tiny_fortunes")
    for category in FORTUNE_CATEGORIES:
        source = FORTUNES / category / f"{category}.txt"
        records = split_records(source.read_text("utf-8"), "%")[:TEXT_RECORDS_PER_CATEGORY]
        (root / category).mkdir()
        (root / category / f"{category}.txt").write_text(
            "".join(record + "%\n" for record in records), "utf-8")
    return root


@pytest.fixture(scope="session")
def text_examples_artifact(run_stage, tiny_fortunes) -> Artifact:
    _, artifacts = run_stage("ingest", {}, {
        "source": "text_dir", "train": str(tiny_fortunes), "record_separator": "%",
        "test_fraction": 0.25, "validation_fraction": 0.15})
    return artifacts["examples"]


@pytest.fixture(scope="session")
def text_statistics_artifacts(run_stage, text_examples_artifact) -> dict[str, Artifact]:
    _, artifacts = run_stage("statistics", {"examples": text_examples_artifact},
                             {"min_token_count": 1})
    return artifacts


@pytest.fixture(scope="session")
def text_model_artifact(run_stage, text_examples_artifact, text_statistics_artifacts) -> Artifact:
    inputs = {"examples": text_examples_artifact, **text_statistics_artifacts}
    _, artifacts = run_stage("train", inputs, {
        "model": "text_lstm", "epochs": 1, "batch_size": 16, "sequence_length": 24,
        "model_options": {"embedding_dim": 8, "units": [16]}})
    return artifacts["model"]


@pytest.fixture(scope="session")
def text_evaluation_artifact(run_stage, text_examples_artifact, text_model_artifact) -> Artifact:
    inputs = {"examples": text_examples_artifact, "model": text_model_artifact}
    _, artifacts = run_stage("evaluate", inputs, {"min_accuracy": 0.0})
    return artifacts["evaluation"]


@pytest.fixture(scope="session")
def text_tflite_artifact(run_stage, text_examples_artifact, text_model_artifact) -> Artifact:
    inputs = {"examples": text_examples_artifact, "model": text_model_artifact}
    _, artifacts = run_stage("quantize", inputs, {
        "variants": ["float32", "dynamic_range", "int8", "qat_int8"],
        "representative_examples": 20, "max_accuracy_drop_points": 100.0,
        "benchmark_tool": False})  # its device checks are asserted on tflite_artifact
    return artifacts["tflite"]


# ---------------------------------------------------------------- unlabelled data (semi-supervised)

UNLABELED_RECORDS = (300, 700)  # records of the committed train sample used as unlabelled


def write_idx_images(images, target: pathlib.Path) -> None:
    """uint8 images [N, H, W] as an IDX images gz file."""
    header = struct.pack(">IIII", 0x0803, *images.shape)
    target.write_bytes(gzip.compress(header + images.tobytes(), mtime=0))


@pytest.fixture(scope="session")
def tiny_unlabeled(tmp_path_factory) -> dict[str, object]:
    """400 images of the committed sample that tiny_fashion_mnist does not use, as an IDX
    images file without labels, plus their hidden labels (never given to training)."""
    import numpy as np

    from edgepipe.components.ingest.sources.idx import read_idx

    start, stop = UNLABELED_RECORDS
    images = read_idx(str(SAMPLE / "train-images-idx3-ubyte.gz"), "images", 3)[start:stop]
    labels = read_idx(str(SAMPLE / "train-labels-idx1-ubyte.gz"), "labels", 1)[start:stop]
    path = tmp_path_factory.mktemp("tiny_unlabeled") / "unlabeled-images-idx3-ubyte.gz"
    write_idx_images(np.ascontiguousarray(images), path)
    truth = {f"{path.name}:{index}": int(label) for index, label in enumerate(labels)}
    return {"images": str(path), "truth": truth}


@pytest.fixture(scope="session")
def semi_examples_artifact(run_stage, tiny_fashion_mnist, tiny_unlabeled) -> Artifact:
    """The tiny sample (300 train, 100 test) plus 400 unlabelled images."""
    config = {**ingest_config(tiny_fashion_mnist), "unlabeled": tiny_unlabeled["images"]}
    _, artifacts = run_stage("ingest", {}, config)
    return artifacts["examples"]


@pytest.fixture(scope="session")
def semi_statistics_artifacts(run_stage, semi_examples_artifact) -> dict[str, Artifact]:
    _, artifacts = run_stage("statistics", {"examples": semi_examples_artifact}, {})
    return artifacts


SEMI_TRAIN_CONFIG = {"epochs": 2, "batch_size": 32, "semi_supervised": {
    "method": "self_training", "threshold": 0.5, "rounds": 1, "epochs": 1}}


@pytest.fixture(scope="session")
def semi_model(run_stage, semi_examples_artifact, semi_statistics_artifacts):
    """(properties, Model artifact) of one round of self-training on the tiny data."""
    inputs = {"examples": semi_examples_artifact, **semi_statistics_artifacts}
    properties, artifacts = run_stage("train", inputs, SEMI_TRAIN_CONFIG)
    return properties, artifacts["model"]


@pytest.fixture(scope="session")
def semi_evaluation_artifact(run_stage, semi_examples_artifact, semi_model) -> Artifact:
    inputs = {"examples": semi_examples_artifact, "model": semi_model[1]}
    _, artifacts = run_stage("evaluate", inputs, {"labeling_queue": "margin"})
    return artifacts["evaluation"]
