"""Scoring a character generator with Keras, shared by the evaluate and quantize stages.

A document is scored as a device generates: from a zero state, the model reads [START] and the
document and predicts each of its characters and then the end (the next [START]); each
prediction costs -log2 p(true next id) bits (edgepipe.contracts.characters). Keras runs the
documents in batches, in chunks of CHUNK positions with the LSTM state carried between chunks
(models/char_lstm.with_state), so a long document costs memory in proportion to the chunk,
not to its length; padding after a shorter document cannot change its predictions (the LSTM
reads forwards only) and is not scored.
"""

from __future__ import annotations

import numpy as np

from edgepipe.contracts import characters

CHUNK = 256   # positions per Keras call when scoring
BATCH = 64    # documents per Keras call


def document_ids(texts: list[str], index: dict) -> list[np.ndarray]:
    """[START] + the document + [START] (its end) per text, as int32 ids."""
    return [np.asarray([characters.START_ID, *characters.encode(text, index),
                        characters.START_ID], np.int32) for text in texts]


def score_keras(stateful, documents: list[np.ndarray], state_shape) -> list[dict[str, np.ndarray]]:
    """Per document {"bits": [n], "predicted": [n]} of each next id (n = len(ids) - 1), with
    the stateful Keras model (char_lstm.with_state)."""
    layers, units = state_shape
    results: list[dict[str, np.ndarray] | None] = [None] * len(documents)
    order = sorted(range(len(documents)), key=lambda i: len(documents[i]))
    for start in range(0, len(order), BATCH):
        members = order[start:start + BATCH]
        longest = max(len(documents[i]) - 1 for i in members)
        inputs = np.zeros((len(members), longest), np.int32)
        targets = np.zeros((len(members), longest), np.int32)
        for row, i in enumerate(members):
            ids = documents[i]
            inputs[row, :len(ids) - 1], targets[row, :len(ids) - 1] = ids[:-1], ids[1:]
        states = [np.zeros((len(members), units), np.float32) for _ in range(2 * layers)]
        bits = np.zeros((len(members), longest))
        predicted = np.zeros((len(members), longest), np.int32)
        for offset in range(0, longest, CHUNK):
            outputs = stateful([inputs[:, offset:offset + CHUNK], *states], training=False)
            logits, states = outputs[0].numpy(), [state.numpy() for state in outputs[1:]]
            width = logits.shape[1]
            flat = logits.reshape(-1, logits.shape[-1])
            bits[:, offset:offset + width] = characters.bits(
                flat, targets[:, offset:offset + width].reshape(-1)).reshape(len(members), width)
            predicted[:, offset:offset + width] = logits.argmax(axis=-1)
        for row, i in enumerate(members):
            n = len(documents[i]) - 1
            results[i] = {"bits": bits[row, :n], "predicted": predicted[row, :n]}
    return results  # type: ignore[return-value]
