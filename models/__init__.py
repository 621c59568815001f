"""Keras model builders, looked up by the name a config gives in `[train] model`.

Every builder takes the input shape, the number of classes, the normalisation statistics of
the raw input (so the model owns its preprocessing: no training/serving skew; a scalar mean
and variance for images, per-channel lists for sequences) and its own keyword options from
the config's `[train.model_options]` table, and returns an uncompiled tf_keras functional
model whose input is the raw feature as float32 and whose output is the class probabilities
(a float32 layer named "probabilities", also under mixed precision). Text builders take
`vocabulary_size` instead of mean and variance, and int32 token ids as input (see
edgepipe.contracts.text_tokens).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pathlib
from typing import Any, Callable

# name -> the module holding its `build` function. Imported only when a model is built, so
# checking a config (and `edgepipe status`) never imports Keras.
MODULES: dict[str, str] = {
    "cnn": "edgepipe.models.cnn",
    "cnn_bn": "edgepipe.models.cnn_bn",
    "lstm": "edgepipe.models.lstm",
    "text_lstm": "edgepipe.models.text_lstm",
}

# The input feature each builder takes (see edgepipe.components.shared.examples_io).
INPUT_FEATURES: dict[str, str] = {"cnn": "image", "cnn_bn": "image", "lstm": "sequence",
                                  "text_lstm": "text"}

# Builder arguments that come from the data; the rest come from [train.model_options].
# rgb_to_gray: image builders take an RGB input and convert it to the gray channel they were
# trained on ([train] input_color = "rgb" on grayscale examples; models/color.py).
DATA_ARGUMENTS = ("input_shape", "num_classes", "mean", "variance", "vocabulary_size",
                  "rgb_to_gray")


def check_name(name: str) -> None:
    if name not in MODULES:
        raise ValueError(
            f"Unknown model {name!r}. Expected one of {sorted(MODULES)}; set [train] model "
            "in the config to one of them."
        )


def builder(name: str) -> Callable[..., Any]:
    """The `build` function registered under `name` (imports its module, and Keras)."""
    check_name(name)
    return importlib.import_module(MODULES[name]).build


def options(name: str) -> list[str]:
    """The keyword options the builder takes besides the data's, read from its source
    without importing it."""
    check_name(name)
    origin = importlib.util.find_spec(MODULES[name]).origin
    tree = ast.parse(pathlib.Path(origin).read_text())
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "build")
    arguments = function.args.args + function.args.kwonlyargs
    return [argument.arg for argument in arguments if argument.arg not in DATA_ARGUMENTS]


def check_options(name: str, model_options: dict[str, Any]) -> None:
    unknown = sorted(set(model_options) - set(options(name)))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; expected a subset "
                         f"of {options(name)}.")


def build(name: str, **kwargs: Any):
    """Build the model registered under `name`."""
    return builder(name)(**kwargs)
