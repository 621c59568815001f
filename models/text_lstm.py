"""Recurrent classifier for text: token ids -> embedding -> LSTM stack -> class probabilities.

Input: int32 token ids [T] named "tokens", produced by edgepipe.contracts.text_tokens with the
vocabulary the statistics stage computed on the training split (id 0 pads, id 1 is an unknown
token). The Embedding has no mask_zero: a mask turns the LSTM into a while loop in TFLite, so
padding ids are learned like any token instead (pre-padding puts them before the text, where
the LSTM's final state has moved on from them). After the embedding the layers are those of
models/lstm.py (unidirectional: each LSTM converts to one fused UNIDIRECTIONAL_SEQUENCE_LSTM op,
also in full int8; no recurrent dropout, which would leave the fusable kernel). The options
`activation`, `normalization` and `residual` are those of models/lstm.py.
"""

from __future__ import annotations

from typing import Sequence

from edgepipe.models import lstm
from edgepipe.models.keras import keras


def build(
    input_shape: Sequence[int],
    num_classes: int,
    vocabulary_size: int,
    embedding_dim: int = 32,
    units: Sequence[int] = (64,),
    conv_filters: int = 0,
    conv_kernel_size: int = 3,
    dropout: float = 0.2,
    dense_units: int = 0,
    unroll: bool = False,
    activation: str = "relu",
    normalization: str = "none",
    residual: bool = False,
) -> keras.Model:
    """Returns an uncompiled model from int32 token ids [T] to class probabilities.

    `vocabulary_size` is the number of ids (the reserved [PAD] and [UNK] included);
    `embedding_dim` the size of each token's learned vector. `units` stacks one LSTM per entry;
    `conv_filters > 0` adds a Conv1D over neighbouring tokens first; `dropout` follows the
    embedding, every LSTM and the dense layer; `dense_units > 0` adds a ReLU layer. `unroll`
    unrolls the LSTMs over the tokens (plain TFLite ops, no state kept between texts: what
    MediaPipe's TextClassifier needs, see models/lstm.py).
    """
    (length,) = tuple(input_shape)
    if vocabulary_size < 3:
        raise ValueError(f"text_lstm: vocabulary_size {vocabulary_size} holds no token besides "
                         "[PAD] and [UNK]; the training texts gave no vocabulary.")
    lstm.check("text_lstm", units, activation, normalization, dropout, residual)
    inputs = keras.Input(shape=(length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")(inputs)
    if dropout:
        x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    outputs = lstm.recurrent_layers(x, num_classes, units, False, conv_filters,
                                    conv_kernel_size, dropout, dense_units, unroll,
                                    activation, normalization, residual)
    return keras.Model(inputs, outputs, name="text_lstm")
