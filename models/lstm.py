"""Recurrent classifiers for sequences: speech features, sensor series, token embeddings.

Input: a fixed-length (padded, see edgepipe.contracts.model_inputs) sequence [steps, channels] of
raw float32 values, with per-channel normalisation inside the model. Built so TFLite
conversion keeps each LSTM as one fused UNIDIRECTIONAL_SEQUENCE_LSTM op: no Masking layer
(masks become a while loop), no recurrent dropout (it leaves the fusable Keras LSTM kernel),
and the converter is given a fixed batch size of 1 (docs/architecture.md and the design notes it cites). Bidirectional
layers are available but convert with REVERSE_V2 ops around two fused LSTMs and are measured
less faithful after conversion: prefer unidirectional stacks for int8 deployment.

Options shared with the other builders (models/choices.py): `activation` of the Conv1D front
end and the dense layer (the LSTM keeps its own tanh/sigmoid gates: other gate functions would
leave the fused kernel), `normalization` of every LSTM's output ("batch" or "layer"),
`residual` (each LSTM that returns sequences, all but the last, adds its input sequence,
through a per-step dense projection when the widths differ: needs two or more LSTMs) and
`dropout`.
"""

from __future__ import annotations

from typing import Sequence

from edgepipe.models import blocks
from edgepipe.models.keras import keras


def build(
    input_shape: Sequence[int],
    num_classes: int,
    mean=None,
    variance=None,
    units: Sequence[int] = (64,),
    bidirectional: bool = False,
    conv_filters: int = 0,
    conv_kernel_size: int = 3,
    dropout: float = 0.2,
    dense_units: int = 0,
    unroll: bool = False,
    activation: str = "relu",
    normalization: str = "none",
    residual: bool = False,
    sample_rate: int = 0,
    window_ms: float = 30.0,
    hop_ms: float = 20.0,
    mel_bins: int = 40,
    spec_augment: bool = False,
) -> keras.Model:
    """Returns an uncompiled model from raw float32 sequences [steps, channels] to class
    probabilities; or, for audio examples (`sample_rate` given by the data), from raw samples
    [samples], whose log-mel spectrogram (models/audio_frontend.py: `window_ms`, `hop_ms`,
    `mel_bins`, `spec_augment`) the LSTMs read frame by frame.

    `mean` and `variance` are per-channel lists from the statistics of the training split.
    `units` stacks one LSTM per entry; all but the last return sequences. `conv_filters > 0`
    adds a Conv1D front end that learns local patterns before the recurrence. `dropout` follows
    every LSTM (and the dense layer); `dense_units > 0` adds a ReLU layer before the output.
    `unroll` unrolls each LSTM over the steps: TFLite then gets plain ops (about 14 per step)
    instead of one fused op that keeps its state in variable tensors between invocations,
    which runtimes that never reset them (MediaPipe Tasks) need; the file grows with the steps.
    """
    check("lstm", units, activation, normalization, dropout, residual)
    if sample_rate:  # audio: the spectrogram's frames are the steps
        from edgepipe.models import audio_frontend

        inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="audio")
        image = audio_frontend.spectrogram(inputs, sample_rate, window_ms, hop_ms, mel_bins, 0,
                                           spec_augment)
        x = keras.layers.Reshape(tuple(image.shape[1:3]), name="frames")(image)
    else:
        inputs = keras.Input(shape=tuple(input_shape), dtype="float32", name="sequence")
        x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance,
                                       name="normalize")(inputs)
    outputs = recurrent_layers(x, num_classes, units, bidirectional, conv_filters,
                               conv_kernel_size, dropout, dense_units, unroll, activation,
                               normalization, residual)
    return keras.Model(inputs, outputs, name="lstm")


def check(builder: str, units: Sequence[int], activation: str, normalization: str,
          dropout: float, residual: bool) -> None:
    blocks.check(builder, activation, normalization, dropout, residual)
    if not units:
        raise ValueError(f"{builder}: model option `units` is empty; give one size per LSTM "
                         "layer, e.g. units = [64].")
    if residual and len(units) < 2:
        raise ValueError(f"{builder}: model option `residual = true` adds a shortcut around "
                         "each LSTM that returns sequences (all but the last); with one LSTM "
                         "there is none. Stack two or more, e.g. units = [64, 64], or set "
                         "residual = false.")


def recurrent_layers(x, num_classes: int, units: Sequence[int], bidirectional: bool = False,
                     conv_filters: int = 0, conv_kernel_size: int = 3, dropout: float = 0.2,
                     dense_units: int = 0, unroll: bool = False, activation: str = "relu",
                     normalization: str = "none", residual: bool = False):
    """The layers after the input's own preprocessing, shared with models/text_lstm.py:
    optional Conv1D, the LSTM stack (normalisation, shortcut, dropout), optional dense layer,
    softmax output."""
    if conv_filters:
        x = keras.layers.Conv1D(
            conv_filters, conv_kernel_size, padding="same", activation=activation, name="conv"
        )(x)
    for index, count in enumerate(units):
        sequences = index < len(units) - 1
        name = f"lstm{index + 1}"
        layer = keras.layers.LSTM(count, return_sequences=sequences, unroll=unroll, name=name)
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"bilstm{index + 1}")
        y = blocks.normalize(layer(x), normalization, name)
        x = blocks.shortcut(x, y, name) if residual and sequences else y
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout{index + 1}")(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation=activation, name="dense")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dense_dropout")(x)
    return blocks.classifier(x, num_classes)
