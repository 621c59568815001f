"""Checks of a user's own model builder, before any training time is spent.

`call` runs the builder (an exception names the file and function and the arguments it got);
`check_model` checks what it returned: a tf_keras model (not Keras 3), one input of the data's
shape, one output of one probability per class; `preflight` also converts the model to a
batch-1 TFLite model with builtin ops only (a layer that needs Flex ops cannot run on the
plain TFLite runtime, so every variant would fail after training) and reloads it from a
.keras file as the evaluate, quantize and report stages do (a Lambda or unregistered custom
layer would fail there). Every error names the builder and says what to change.
"""

from __future__ import annotations

import pathlib
import re
import tempfile
from typing import Any

import numpy as np

FIX = ("build the model from tf_keras layers (`from edgepipe.models.keras import keras` or "
       "`import tf_keras as keras`)")


def _name(reference: str) -> str:
    where, _, function = reference.rpartition(":")
    return f"{function}() in {where}"


def call(reference: str, arguments: dict[str, Any], options: dict[str, Any]):
    """Import the builder and call it; any exception becomes a ValueError naming it."""
    from edgepipe import models

    try:
        function = models.user.load(reference)
    except Exception as error:  # the user's module can raise anything while importing
        raise ValueError(f"[train] model {reference!r}: importing it raised "
                         f"{type(error).__name__}: {error}; fix the file.") from error
    try:
        return function(**arguments, **options)
    except Exception as error:
        given = ", ".join(f"{key}={value!r}" for key, value in arguments.items()
                          if key not in ("mean", "variance"))
        raise ValueError(
            f"[train] model {reference!r}: {_name(reference)} raised {type(error).__name__}: "
            f"{error}. It was called with {given}, the normalisation statistics and "
            f"[train.model_options] {options}; fix the function or the options.") from error


def check_model(reference: str, model, spec: dict[str, Any], num_classes: int) -> None:
    """What the builder returned must be a tf_keras model from the data's input to one
    probability per class."""
    from edgepipe.models.keras import keras

    where = f"[train] model {reference!r}: {_name(reference)}"
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    if not isinstance(model, keras.Model):
        if kind.startswith("keras."):
            raise ValueError(f"{where} returned a Keras 3 model ({kind}); the pipeline needs "
                             f"tf_keras (Keras 2) for QAT and TFLite: {FIX}.")
        raise ValueError(f"{where} returned {kind}, not a model; return a tf_keras Model: "
                         f"{FIX}.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"{where} returned a model with {len(model.inputs)} inputs and "
                         f"{len(model.outputs)} outputs; it must take one input and return "
                         "one tensor of class probabilities.")
    expected_input = (None, *spec["input_shape"])
    if tuple(model.input_shape) != expected_input:
        raise ValueError(f"{where} returned a model whose input shape is "
                         f"{tuple(model.input_shape)}; the examples give {expected_input}: "
                         "use keras.Input(shape=input_shape).")
    if tuple(model.output_shape) != (None, num_classes):
        raise ValueError(f"{where} returned a model whose output shape is "
                         f"{tuple(model.output_shape)}; expected (None, {num_classes}): one "
                         "probability per class, e.g. keras.layers.Dense(num_classes, "
                         "activation='softmax') last.")
    if spec.get("task", "classification") == "classification":  # a regression model's
        _check_probabilities(where, model, spec)  # output layer is replaced (task_heads.py)


def _check_probabilities(where: str, model, spec: dict[str, Any]) -> None:
    dtype = "int32" if spec["input_dtype"] == "int32" else "float32"
    batch = np.zeros((2, *spec["input_shape"]), dtype)
    if dtype == "float32":
        batch[1] = np.random.default_rng(0).uniform(0, 1, spec["input_shape"])
    outputs = np.asarray(model(batch, training=False), dtype=np.float64)
    if not (np.all(outputs >= -1e-6) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3)):
        raise ValueError(f"{where} returned a model whose outputs are not probabilities (rows "
                         f"sum to {outputs.sum(axis=1).round(3).tolist()}); end it with a "
                         "softmax, e.g. Dense(num_classes, activation='softmax').")


def preflight(tf, keras, reference: str, model) -> None:
    """The model converts to builtin-op TFLite and reloads from a .keras file."""
    where = f"[train] model {reference!r}: {_name(reference)}"
    check_builtin_ops(tf, where, model)
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "model.keras"
        try:
            model.save(path)
            keras.models.load_model(path)
        except Exception as error:
            raise ValueError(
                f"{where} returned a model that does not reload from a .keras file "
                f"({type(error).__name__}: {error}); the evaluate, quantize and report stages "
                f"load it so. Use built-in tf_keras layers instead of Lambda or custom layers."
            ) from error


def check_builtin_ops(tf, where: str, model) -> None:
    """Convert a batch-1 float32 TFLite model allowing builtin ops only."""
    dtype = tf.as_dtype(model.inputs[0].dtype)

    @tf.function
    def serve(inputs):
        return model(inputs, training=False)

    function = serve.get_concrete_function(
        tf.TensorSpec((1, *model.input_shape[1:]), dtype, name=model.input_names[0]))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        converter.convert()
    except Exception as error:  # the converter raises several unrelated types
        text = str(error)
        ops = sorted({op.strip() for line in re.findall(r"(?:TF Select|Custom|Flex) ops: (.+)",
                                                         text) for op in line.split(",")})
        detail = "" if ops else f" Converter: {text[:600]}"
        raise ValueError(
            f"{where} returned a model that does not convert to TFLite with builtin ops "
            f"(ops the TFLite runtime lacks: {ops or 'see below'}); they would need Flex "
            "(Select TF) ops or custom ops, which the plain TFLite runtime cannot run. "
            f"Replace the layers that use them.{detail}") from error
