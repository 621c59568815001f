"""Character-level generator: character ids -> embedding -> 1-3 LSTMs -> next-character logits.

Input: int32 character ids [T] named "tokens" (edgepipe.contracts.characters: 0 starts a
document, 1 is an unknown character). Output: float32 logits [T, V] over the vocabulary, one
per position: the model predicts every next character at once (teacher forcing). Each LSTM is
followed by dropout and, with `layer_norm`, a LayerNormalization of its outputs.

TFLite converts stateless LSTMs only, and a device generates one character at a time, so the
model is exported for the device as one step with the state explicit (`step_function`):
`step(token [1], h [layers, units], c [layers, units]) -> (logits [1, V], h, c)`, the LSTM
cell written out with the trained weights (matmuls, sigmoid, tanh: builtin ops that every
converter variant quantizes). `with_state` is the same step for whole chunks in Keras (the
LSTM layers with an initial state), which evaluation uses to score a long text in pieces.
"""

from __future__ import annotations

from edgepipe.models.keras import keras


def build(
    vocabulary_size: int,
    embedding_dim: int = 32,
    units: int = 128,
    layers: int = 1,
    dropout: float = 0.1,
    layer_norm: bool = False,
) -> keras.Model:
    """An uncompiled model from int32 ids [T] (any T) to logits [T, vocabulary_size]."""
    if vocabulary_size < 3:
        raise ValueError(f"char_lstm: vocabulary_size {vocabulary_size} holds no character "
                         "besides [START] and [UNK]; the training corpus gave no vocabulary.")
    if not 1 <= int(layers) <= 3:
        raise ValueError(f"char_lstm: layers = {layers}; use 1, 2 or 3 LSTM layers.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"char_lstm: dropout {dropout} is outside [0, 1).")
    inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding")(inputs)
    for index in range(1, int(layers) + 1):
        x = keras.layers.LSTM(units, return_sequences=True, name=f"lstm_{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
        if layer_norm:
            x = keras.layers.LayerNormalization(name=f"layer_norm_{index}")(x)
    logits = keras.layers.Dense(vocabulary_size, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="char_lstm")


def lstm_layers(model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]


def _norm(model, index: int):
    try:
        return model.get_layer(f"layer_norm_{index}")
    except ValueError:
        return None


def with_state(model) -> keras.Model:
    """The trained layers as (ids [T], h_1, c_1, ...) -> (logits, h_1, c_1, ...), dropout off."""
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = model.get_layer("embedding")(tokens)
    states_in, states_out = [], []
    for index, layer in enumerate(lstm_layers(model), start=1):
        h = keras.Input(shape=(layer.units,), name=f"h_{index}")
        c = keras.Input(shape=(layer.units,), name=f"c_{index}")
        runner = keras.layers.LSTM(layer.units, return_sequences=True, return_state=True,
                                   name=f"stateful_lstm_{index}")
        x, h_out, c_out = runner(x, initial_state=[h, c])
        runner.set_weights(layer.get_weights())
        norm = _norm(model, index)
        if norm is not None:
            x = norm(x)
        states_in += [h, c]
        states_out += [h_out, c_out]
    logits = model.get_layer("logits")(x)
    return keras.Model([tokens, *states_in], [logits, *states_out], name="char_lstm_stateful")


def state_shape(model) -> tuple[int, int]:
    """(layers, units) of the explicit state."""
    layers = lstm_layers(model)
    return len(layers), layers[0].units


def step_function(tf, model):
    """A tf.function `step(token [1] int32, h, c) -> {"logits", "h", "c"}` with fixed shapes."""
    layers = lstm_layers(model)
    count, units = state_shape(model)
    if any(layer.units != units for layer in layers):
        raise ValueError("char_lstm: every LSTM layer needs the same number of units for the "
                         "stacked state of the step signature.")
    embedding = model.get_layer("embedding").embeddings
    head = model.get_layer("logits")
    norms = [_norm(model, index) for index in range(1, count + 1)]

    @tf.function(input_signature=[
        tf.TensorSpec([1], tf.int32, name="token"),
        tf.TensorSpec([count, units], tf.float32, name="h"),
        tf.TensorSpec([count, units], tf.float32, name="c")])
    def step(token, h, c):
        x = tf.gather(embedding, token)  # [1, embedding_dim]
        hs, cs = [], []
        for index, layer in enumerate(layers):
            h_prev, c_prev = h[index:index + 1], c[index:index + 1]
            z = (tf.matmul(x, layer.cell.kernel) + tf.matmul(h_prev, layer.cell.recurrent_kernel)
                 + layer.cell.bias)
            i, f, g, o = tf.split(z, 4, axis=1)  # Keras's gate order
            c_new = tf.sigmoid(f) * c_prev + tf.sigmoid(i) * tf.tanh(g)
            h_new = tf.sigmoid(o) * tf.tanh(c_new)
            hs.append(h_new)
            cs.append(c_new)
            x = norms[index](h_new) if norms[index] is not None else h_new
        return {"logits": head(x), "h": tf.concat(hs, axis=0), "c": tf.concat(cs, axis=0)}

    return step
