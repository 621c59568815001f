"""Keras model builders, looked up by the name a config gives in `[train] model`.

Every builder takes the input shape, the number of classes, the normalisation statistics of
the raw input (so the model owns its preprocessing: no training/serving skew; a scalar mean
and variance for images, per-channel lists for sequences) and its own keyword options from
the config's `[train.model_options]` table, and returns an uncompiled tf_keras functional
model whose input is the raw feature as float32 and whose output is the class probabilities
(a float32 layer named "probabilities", also under mixed precision). Text builders take
`vocabulary_size` instead of mean and variance, and int32 token ids as input (see
edgepipe.contracts.text_tokens).

`[train] model` may also name the user's own builder, "path/to/my_model.py:build" or
"package.module:build" (see models/user.py): the same arguments, checked the same way. The
options every built-in shares (activation, normalization, dropout, residual) take the values
of models/choices.py; blocks.py holds the layers that apply them.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pathlib
from typing import Any, Callable

from edgepipe.models import choices, user

# name -> the module holding its `build` function. Imported only when a model is built, so
# checking a config (and `edgepipe status`) never imports Keras.
MODULES: dict[str, str] = {
    "cnn": "edgepipe.models.cnn",
    "cnn_bn": "edgepipe.models.cnn_bn",
    "lstm": "edgepipe.models.lstm",
    "text_lstm": "edgepipe.models.text_lstm",
    "mlp": "edgepipe.models.mlp",
    "ssd": "edgepipe.models.ssd",
    "fomo": "edgepipe.models.fomo",
    "conv1d": "edgepipe.models.conv1d",
    "char_lstm": "edgepipe.models.char_lstm",
    "dscnn": "edgepipe.models.dscnn",
}

# The input features each builder takes (see edgepipe.components.shared.examples_io).
INPUT_FEATURES: dict[str, tuple[str, ...]] = {
    "cnn": ("image",), "cnn_bn": ("image",), "lstm": ("sequence", "audio"), "text_lstm": ("text",),
    "mlp": ("sequence", "image"), "conv1d": ("sequence",), "dscnn": ("audio",),
    "ssd": ("image",), "fomo": ("image",),
}  # char_lstm is absent: a generator, chosen by [pipeline] task = "generation", not by input

# Builder arguments that come from the data; the rest come from [train.model_options].
# rgb_to_gray: image builders take an RGB input and convert it to the gray channel they were
# trained on ([train] input_color = "rgb" on grayscale examples; models/color.py).
# sample_rate: audio builders compute their spectrogram from samples at this rate.
DATA_ARGUMENTS = ("input_shape", "num_classes", "mean", "variance", "vocabulary_size",
                  "rgb_to_gray", "sample_rate")


def check_name(name: str) -> None:
    if user.is_reference(name):
        user.signature(name)
    elif name.endswith(".py"):
        raise ValueError(f"[train] model {name!r}: name the function too, as "
                         f"<file.py or module>:<function>, e.g. \"{name}:build\".")
    elif name not in MODULES:
        raise ValueError(
            f"Unknown model {name!r}. Expected one of {sorted(MODULES)}, or your own builder "
            f"({user.EXAMPLE}); set [train] model in the config."
        )


def resolve(name: str, base_dir: str | pathlib.Path = ".") -> str:
    """A built-in's name as it is; a user model's reference with its file made absolute
    (relative to `base_dir`), checked without importing it."""
    if user.is_reference(name):
        return user.resolve(name, base_dir)
    check_name(name)
    return name


def builder(name: str) -> Callable[..., Any]:
    """The `build` function registered under `name`, or the user's function (imports its
    module, and Keras)."""
    check_name(name)
    if user.is_reference(name):
        return user.load(name)
    return importlib.import_module(MODULES[name]).build


def _built_in_signature(name: str) -> user.Signature:
    origin = importlib.util.find_spec(MODULES[name]).origin
    tree = ast.parse(pathlib.Path(origin).read_text())
    function = next(node for node in tree.body
                    if isinstance(node, ast.FunctionDef) and node.name == "build")
    names = [argument.arg for argument in function.args.args + function.args.kwonlyargs]
    return user.Signature(tuple(names), (), False)


def signature(name: str) -> user.Signature:
    """The builder's parameters, read from its source without importing it."""
    check_name(name)
    return user.signature(name) if user.is_reference(name) else _built_in_signature(name)


def option_defaults(name: str) -> dict[str, Any]:
    """The builder's options with a literal default value (lists for tuples), read from its
    source without importing it: what an option left out of [train.model_options] is."""
    wanted = name.rpartition(":")[2] if user.is_reference(name) else "build"
    tree = ast.parse(signature_source(name))
    arguments = [node for node in tree.body
                 if isinstance(node, ast.FunctionDef) and node.name == wanted][-1].args
    positional = arguments.posonlyargs + arguments.args
    pairs = list(zip(positional[len(positional) - len(arguments.defaults):], arguments.defaults))
    pairs += [(a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults) if d]
    found = {}
    for argument, default in pairs:
        try:
            value = ast.literal_eval(default)
        except ValueError:
            continue
        if argument.arg not in DATA_ARGUMENTS:
            found[argument.arg] = list(value) if isinstance(value, tuple) else value
    return found


def signature_source(name: str) -> str:
    """The source of the module that defines the builder."""
    check_name(name)
    if user.is_reference(name):
        return user.source_file(name).read_text(encoding="utf-8")
    return pathlib.Path(importlib.util.find_spec(MODULES[name]).origin).read_text()


def options(name: str) -> list[str]:
    """The keyword options the builder takes besides the data's, read from its source
    without importing it."""
    return [argument for argument in signature(name).parameters
            if argument not in DATA_ARGUMENTS]


def check_options(name: str, model_options: dict[str, Any]) -> None:
    """Unknown options, values no built-in accepts, or a user builder's required option
    left out: ValueError naming it."""
    found = signature(name)
    if not found.any_keyword:
        unknown = sorted(set(model_options) - set(options(name)))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for model {name!r}; expected a "
                             f"subset of {options(name)}.")
    if user.is_reference(name):
        missing = [argument for argument in found.required
                   if argument not in DATA_ARGUMENTS and argument not in model_options]
        if missing:
            raise ValueError(f"model {name!r} requires option(s) {missing}; set them in "
                             "[train.model_options].")
        return
    shared = {key: value for key, value in model_options.items()
              if key in ("activation", "normalization", "dropout", "residual")}
    try:
        choices.check(shared)
    except ValueError as error:
        raise ValueError(f"model {name!r}: option {error}.") from None


def data_arguments(name: str, available: dict[str, Any]) -> dict[str, Any]:
    """The data's arguments the builder declares (all of them for a user builder that takes
    **kwargs; a built-in declares what its input kind needs)."""
    found = signature(name)
    if found.any_keyword:
        return dict(available)
    return {key: value for key, value in available.items() if key in found.parameters}


def build(name: str, **kwargs: Any):
    """Build the model registered under `name`."""
    return builder(name)(**kwargs)
