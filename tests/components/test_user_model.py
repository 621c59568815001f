"""Bring your own model: `[train] model = "my_model.py:build"` or "package.module:build".

A missing file or function is a config error (read with ast, no import, no TensorFlow); a
builder that raises, returns a Keras 3 model, the wrong shapes, no probabilities, layers that
need Flex ops or a model that does not reload fails the train stage before any training, with
the file and function named; its source file is part of train's cache key, and nothing else.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import pytest

from edgepipe import api
from edgepipe.components.train import stage as train_stage
from edgepipe.contracts import artifacts
from edgepipe.pipeline import cache
from tests.conftest import REPO

GOOD = '''
import tf_keras as keras


def build(input_shape, num_classes, mean, variance, width=8):
    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Normalization(mean=mean, variance=variance)(inputs)
    x = keras.layers.Conv2D(width, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
'''


def model_file(folder: pathlib.Path, body: str, name: str = "my_model.py") -> pathlib.Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def config_file(folder: pathlib.Path, model: str, options: str = "") -> pathlib.Path:
    """The quickstart config with [train] model set, written beside the model file."""
    text = (REPO / "configs" / "quickstart.toml").read_text()
    text = text.replace('"../data/', f'"{REPO}/data/').replace('"../artifacts/', f'"{folder}/')
    text = text.replace('model = "cnn"', f'model = "{model}"') + f"\n{options}\n"
    path = folder / "pipeline.toml"
    path.write_text(text)
    return path


def test_a_user_model_file_is_resolved_against_the_config_folder(tmp_path):
    path = model_file(tmp_path, GOOD)
    config = api.load_config(config_file(tmp_path, "my_model.py:build"))
    assert config.stages["train"].model == f"{path}:build"


def test_checking_the_config_never_imports_tensorflow(tmp_path):
    model_file(tmp_path, GOOD)
    code = (f"import sys, edgepipe.api as api; api.status(api.load_config({str(config_file(tmp_path, 'my_model.py:build'))!r}));"
            "print('tensorflow' in sys.modules, 'tf_keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("model, options, body, words", [
    ("nothere.py:build", "", None, ["no file", "nothere.py", "relative to the config"]),
    ("my_model.py:buidl", "", GOOD, ["defines no top-level function 'buidl'", "['build']"]),
    ("my_model.py:build", "[train.model_options]\nwidht = 4", GOOD,
     ["unknown option(s) ['widht']", "['width']"]),
    ("my_model.py:build", "", "def build(shape, classes):\n    pass\n",
     ["takes no argument 'input_shape'"]),
    ("my_model.py:build", "", "def build(input_shape, num_classes, depth):\n    pass\n",
     ["requires option(s) ['depth']", "[train.model_options]"]),
    ("my_model.py:build", "", "def build(:\n", ["not valid Python"]),
    ("no_such_package.models:build", "", None, ["cannot find module 'no_such_package.models'"]),
    ("my_model.py", "", GOOD, ["<file.py or module>:<function>", "my_model.py:build"]),
])
def test_config_errors_name_the_file_and_function(tmp_path, model, options, body, words):
    if body is not None:
        model_file(tmp_path, body)
    with pytest.raises(api.ConfigError) as raised:
        api.load_config(config_file(tmp_path, model, options))
    message = str(raised.value)
    assert "[train] model" in message
    for word in words:
        assert word in message, message


def test_a_module_reference_works_like_a_file(tmp_path, monkeypatch):
    package = tmp_path / "team_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    path = model_file(package, GOOD, "vision.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = api.load_config(config_file(tmp_path, "team_models.vision:build"))
    train = config.stages["train"]
    assert train.model == "team_models.vision:build"
    assert train_stage.fingerprint(train, {}).endswith(
        __import__("hashlib").sha256(path.read_bytes()).hexdigest())


def test_the_model_file_is_in_trains_cache_key_and_no_other_file_is(tmp_path):
    path = model_file(tmp_path, GOOD)
    config = train_stage.Config.model_validate({"model": "my_model.py:build"},
                                               context={"base_dir": tmp_path})
    key, parts = cache.stage_key(train_stage.SPEC, config, 0, {})
    (tmp_path / "helpers.py").write_text("x = 1\n")  # an unrelated file beside it
    assert cache.stage_key(train_stage.SPEC, config, 0, {})[0] == key
    path.write_text(GOOD.replace("width=8", "width=12"))
    changed, changed_parts = cache.stage_key(train_stage.SPEC, config, 0, {})
    assert changed != key and changed_parts["data"] != parts["data"]
    builtin = train_stage.Config.model_validate({"model": "cnn"})
    assert "data" not in cache.stage_key(train_stage.SPEC, builtin, 0, {})[1]  # as before


def train_with(run_stage, inputs, tmp_path, body: str, **options):
    path = model_file(tmp_path, body)
    return run_stage("train", inputs, {"model": f"{path}:build", "epochs": 1,
                                       "batch_size": 32, "model_options": options})


@pytest.fixture(scope="module")
def inputs(examples_artifact, statistics_artifacts):
    return {"examples": examples_artifact, **statistics_artifacts}


def test_a_user_model_trains_and_its_model_json_names_it(run_stage, inputs, tmp_path):
    properties, outputs = train_with(run_stage, inputs, tmp_path, GOOD, width=4)
    info = artifacts.read_model_info(outputs["model"].path)
    assert info["model"] == f"{tmp_path / 'my_model.py'}:build"
    assert info["model_options"] == {"width": 4}
    assert info["input_shape"] == [28, 28, 1] and properties["params"] > 0


RAISES = GOOD.replace("    inputs = keras.Input", "    raise RuntimeError('width too small')\n"
                      "    inputs = keras.Input")
KERAS3 = GOOD.replace("import tf_keras as keras", "import keras")
WRONG_SHAPE = GOOD.replace("Dense(num_classes,", "Dense(num_classes + 1,")
LOGITS = GOOD.replace('Dense(num_classes, activation="softmax")', "Dense(num_classes)")
NOT_A_MODEL = "def build(input_shape, num_classes):\n    return 'a model'\n"
FLEX = GOOD.replace(
    "    x = keras.layers.GlobalAveragePooling2D()(x)",
    "    x = keras.layers.GlobalAveragePooling2D()(x)\n    x = CumulativeProduct()(x)") + '''

class CumulativeProduct(keras.layers.Layer):
    def call(self, x):
        import tensorflow as tf
        return tf.math.cumprod(x, axis=-1)
'''
CUSTOM_LAYER = FLEX.replace("tf.math.cumprod(x, axis=-1)", "x * 2.0")


@pytest.mark.parametrize("body, words", [
    (RAISES, ["build() in", "raised RuntimeError: width too small", "called with input_shape"]),
    (KERAS3, ["returned a Keras 3 model", "tf_keras"]),
    (WRONG_SHAPE, ["output shape is (None, 11)", "expected (None, 10)"]),
    (LOGITS, ["not probabilities", "softmax"]),
    (NOT_A_MODEL, ["returned builtins.str, not a model"]),
    (FLEX, ["does not convert to TFLite with builtin ops", "Cumprod", "Flex"]),
    (CUSTOM_LAYER, ["does not reload from a .keras file", "custom layers"]),
], ids=["raises", "keras3", "wrong_shape", "logits", "not_a_model", "flex_ops", "custom_layer"])
def test_a_bad_builder_fails_before_training_naming_file_and_function(
        run_stage, inputs, tmp_path, body, words):
    with pytest.raises(ValueError) as raised:
        train_with(run_stage, inputs, tmp_path, body)
    message = str(raised.value)
    assert f"{tmp_path / 'my_model.py'}" in message and "build" in message
    for word in words:
        assert word in message, message
