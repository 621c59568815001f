"""Recurrent classifiers for sequences: speech features, sensor series, token embeddings.

Input: a fixed-length (padded, see edgepipe.contracts.model_inputs) sequence [steps, channels] of
raw float32 values, with per-channel normalisation inside the model. Built so TFLite
conversion keeps each LSTM as one fused UNIDIRECTIONAL_SEQUENCE_LSTM op: no Masking layer
(masks become a while loop), no recurrent dropout (it leaves the fusable Keras LSTM kernel),
and the converter is given a fixed batch size of 1 (docs/architecture.md and the design notes it cites). Bidirectional
layers are available but convert with REVERSE_V2 ops around two fused LSTMs and are measured
less faithful after conversion: prefer unidirectional stacks for int8 deployment.
"""

from __future__ import annotations

from typing import Sequence

from edgepipe.models.keras import keras


def build(
    input_shape: Sequence[int],
    num_classes: int,
    mean,
    variance,
    units: Sequence[int] = (64,),
    bidirectional: bool = False,
    conv_filters: int = 0,
    conv_kernel_size: int = 3,
    dropout: float = 0.2,
    dense_units: int = 0,
    unroll: bool = False,
) -> keras.Model:
    """Returns an uncompiled model from raw float32 sequences [steps, channels] to class
    probabilities.

    `mean` and `variance` are per-channel lists from the statistics of the training split.
    `units` stacks one LSTM per entry; all but the last return sequences. `conv_filters > 0`
    adds a Conv1D front end that learns local patterns before the recurrence. `dropout` follows
    every LSTM (and the dense layer); `dense_units > 0` adds a ReLU layer before the output.
    `unroll` unrolls each LSTM over the steps: TFLite then gets plain ops (about 14 per step)
    instead of one fused op that keeps its state in variable tensors between invocations,
    which runtimes that never reset them (MediaPipe Tasks) need; the file grows with the steps.
    """
    if not units:
        raise ValueError("lstm: model option `units` is empty; give one size per LSTM layer, "
                         "e.g. units = [64].")
    inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="sequence")
    x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalize")(inputs)
    outputs = recurrent_layers(x, num_classes, units, bidirectional, conv_filters,
                               conv_kernel_size, dropout, dense_units, unroll)
    return keras.Model(inputs, outputs, name="lstm")


def recurrent_layers(x, num_classes: int, units: Sequence[int], bidirectional: bool = False,
                     conv_filters: int = 0, conv_kernel_size: int = 3, dropout: float = 0.2,
                     dense_units: int = 0, unroll: bool = False):
    """The layers after the input's own preprocessing, shared with models/text_lstm.py:
    optional Conv1D, the LSTM stack with dropout, optional dense layer, softmax output."""
    if conv_filters:
        x = keras.layers.Conv1D(
            conv_filters, conv_kernel_size, padding="same", activation="relu", name="conv"
        )(x)
    for index, count in enumerate(units):
        layer = keras.layers.LSTM(
            count, return_sequences=index < len(units) - 1, unroll=unroll,
            name=f"lstm{index + 1}")
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bilstm{index + 1}")
        x = layer(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{index + 1}")(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dense_dropout")(x)
    # float32 output even under a mixed-precision policy: softmax in half precision is lossy.
    return keras.layers.Dense(
        num_classes, activation="softmax", dtype="float32", name="probabilities"
    )(x)
