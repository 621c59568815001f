"""The report's "inside the network" section: what the trained model computes on test examples.

CNN: the first convolution layer's filters and its activation maps for one test example.
LSTM: the first LSTM layer's hidden state over time (over tokens, for text) for a few test
examples, from a sub-model
that shares the trained weights but returns the whole sequence of states. The model is the
tf_keras model file (model.keras); inputs go through edgepipe.contracts.model_inputs like everywhere
else. TensorFlow is imported (through models.keras) inside the functions.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from edgepipe.contracts import artifacts, model_inputs, text_tokens
from edgepipe.components.report import plots_network as plots


def inside(model_dir: pathlib.Path, model_info: dict[str, Any], test: dict, feature: str,
           class_names: list[str], examples: int) -> dict[str, Any]:
    """{"kind": "cnn" | "lstm" | "none", figures and a short description of what they show}."""
    from edgepipe.models.keras import keras

    path = model_dir / artifacts.KERAS_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the Model artifact must hold the Keras model "
                                "the train stage saves. Re-run train.")
    model = keras.models.load_model(path)
    layers = _flat_layers(model)
    # The first trained convolution (not the frozen RGB-to-gray one of models/color.py).
    conv = next((layer for layer in layers
                 if isinstance(layer, keras.layers.Conv2D) and layer.trainable), None)
    recurrent = next((layer for layer in layers if _lstm_of(keras, layer) is not None), None)
    chosen = list(range(min(examples, len(test["id"]))))
    batch = model_inputs.prepare(model_info, [test[feature][index] for index in chosen])
    model, batch = _enclosing(keras, model, conv or recurrent, batch)
    if conv is not None:
        return _convolution(keras, model, conv, batch[:1], test, feature, class_names)
    if recurrent is not None:
        return _recurrent(keras, model, recurrent, batch, test, feature, chosen, class_names,
                          model_info)
    return {"kind": "none", "note": f"the {model_info.get('model', '?')} model has neither a "
                                    "2-D convolution nor an LSTM layer to look inside"}


def _truth(test: dict, index: int, class_names: list[str]) -> str:
    """What test example `index` really is: its class name, or its regression targets."""
    if "label" in test:
        return class_names[int(test["label"][index])]
    if "objects" in test:  # a detector's image: the classes of its boxes
        labels = test["objects"][index]["label"]
        return ", ".join(class_names[int(label)] for label in labels) or "background"
    return "target " + ", ".join(f"{value:.4g}" for value in test["target"][index])


def _flat_layers(model) -> list:
    """Layers in order, looking into nested models."""
    found = []
    for layer in model.layers:
        found.extend(_flat_layers(layer) if hasattr(layer, "layers") and not _is_wrapper(layer)
                     else [layer])
    return found


def _enclosing(keras, model, layer, batch: np.ndarray):
    """(the nested model that holds `layer`, and what it receives for `batch`), or the model
    and batch as they are: a forecasting model wraps the builder's network in a scaling head
    (components/shared/forecast_head.py), and its layers are looked at inside it."""
    if layer is None or layer in model.layers:
        return model, batch
    for nested in model.layers:
        if hasattr(nested, "layers") and not _is_wrapper(nested) and layer in _flat_layers(nested):
            received = nested.inbound_nodes[-1].input_tensors  # its call in the outer model
            inner = keras.Model(model.inputs, received)(batch, training=False)
            return _enclosing(keras, nested, layer, np.asarray(inner))
    return model, batch


def _is_wrapper(layer) -> bool:
    return hasattr(layer, "layer") or hasattr(layer, "forward_layer")


def _lstm_of(keras, layer):
    if isinstance(layer, keras.layers.LSTM):
        return layer
    if isinstance(layer, keras.layers.Bidirectional) and isinstance(layer.forward_layer,
                                                                    keras.layers.LSTM):
        return layer
    return None


def _convolution(keras, model, conv, batch: np.ndarray, test: dict, feature: str,
                 class_names: list[str]) -> dict[str, Any]:
    kernel = conv.get_weights()[0]  # [height, width, input channels, filters]
    activations = keras.Model(model.inputs, conv.output)(batch, training=False).numpy()[0]
    label = _truth(test, 0, class_names)
    # What the convolution sees: the image itself, or what the model made of its raw input
    # (an audio model's log-mel spectrogram, frames down and mel bands across).
    shown = test[feature][0] if feature == "image" else keras.Model(
        model.inputs, conv.input)(batch, training=False).numpy()[0]
    return {
        "kind": "cnn",
        "layer": conv.name,
        "filters": int(kernel.shape[-1]),
        "kernel": f"{kernel.shape[0]}×{kernel.shape[1]}×{kernel.shape[2]}",
        "example_id": str(test["id"][0]),
        "example_label": label,
        "filters_figure": plots.conv_filters(kernel),
        "activations_figure": plots.activation_maps(shown, activations,
                                                            f"{test['id'][0]} ({label})"),
    }


def _recurrent(keras, model, layer, batch: np.ndarray, test: dict, feature: str,
               chosen: list[int], class_names: list[str], model_info: dict) -> dict[str, Any]:
    states = lstm_states(model, layer, batch)
    if feature == "text":  # the model reads tokens; a text longer than T fills every step
        lengths = [len(text_tokens.tokenize(test[feature][index])) for index in chosen]
        unit = "tokens"
    else:
        lengths = [len(test[feature][index]) for index in chosen]
        unit = "steps"
    titles = [f"{test['id'][index]} — {_truth(test, index, class_names)} "
              f"({lengths[number]} {unit})" for number, index in enumerate(chosen)]
    return {
        "kind": "lstm",
        "layer": layer.name,
        "units": int(states.shape[-1]),
        "steps": int(states.shape[1]),
        "padding": model_info.get("padding", "pre"),
        "examples": len(chosen),
        "step_unit": "token" if feature == "text" else "time step",
        "hidden_figure": plots.hidden_states(states, lengths, titles,
                                             model_info.get("padding", "pre"),
                                             "token" if feature == "text" else "time step"),
    }


def lstm_states(model, layer, batch: np.ndarray) -> np.ndarray:
    """Hidden states [examples, steps, units] of an LSTM (or Bidirectional LSTM) layer.

    A copy of the layer that returns every step's state, with the trained weights, is fed
    by the part of the model before it; the trained model itself is left untouched.
    """
    from edgepipe.models.keras import keras

    config = layer.get_config()
    if isinstance(layer, keras.layers.Bidirectional):
        for part in ("layer", "backward_layer"):
            if part in config:
                config[part]["config"]["return_sequences"] = True
    else:
        config["return_sequences"] = True
    config["name"] = f"{layer.name}_sequences"
    replica = type(layer).from_config(config)
    upstream = keras.Model(model.inputs, layer.input)
    sequences = keras.Model(model.inputs, replica(upstream.output))
    replica.set_weights(layer.get_weights())
    return sequences(batch, training=False).numpy()
