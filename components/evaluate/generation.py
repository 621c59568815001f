"""The evaluate stage's generation piece: bits per character and perplexity of the trained
generator on the validation and test splits, the gates on them, and the test text's most
surprising characters.

A split is scored document by document, as a device would generate
(components/shared/character_scoring.py); bits per character = the mean of -log2 p(true next
id) over every prediction.

metrics.json: bits_per_char and perplexity (test: the gates' values), the same per split,
the characters scored and how many of test's were unknown to the vocabulary, and the
blessing. singled_out.json: the most surprising test characters in context.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from edgepipe.components.evaluate import gates
from edgepipe.components.shared import examples_io
from edgepipe.components.shared.character_scoring import document_ids, score_keras
from edgepipe.contracts import artifacts, characters, registry, tasks

CONTEXT = 40  # characters shown before a surprising one


def summary(scored: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    bits = np.concatenate([item["bits"] for item in scored]) if scored else np.zeros(0)
    if not len(bits):
        return {"bits_per_char": None, "perplexity": None, "characters": 0}
    mean = float(bits.mean())
    return {"bits_per_char": mean, "perplexity": float(2.0 ** mean), "characters": int(len(bits))}


def surprising(ids: list[str], documents: list[np.ndarray], scored, tokens: list[str],
               units: str, count: int) -> list[dict[str, Any]]:
    """The `count` test characters with the most bits, in context (before, the character,
    after) with the model's most probable character there."""
    candidates = [(float(item["bits"][position]), index, position)
                  for index, item in enumerate(scored) for position in range(len(item["bits"]))]
    candidates.sort(key=lambda item: (-item[0], item[1], item[2]))
    rows = []
    for bits, index, position in candidates[:count]:
        ids_of = documents[index]
        target = position + 1  # the id predicted at this position
        rows.append({
            "id": ids[index], "position": position, "bits": bits,
            "before": characters.decode(ids_of[max(1, target - CONTEXT):target], tokens, units),
            "character": characters.decode([ids_of[target]], tokens, units)
            if ids_of[target] != characters.START_ID else "[END]",
            "after": characters.decode(ids_of[target + 1:target + 11], tokens, units),
            "expected": characters.decode([int(scored[index]["predicted"][position])],
                                          tokens, units)})
    return rows


def version_bits(version_dir, texts: list[str]) -> float:
    """Test bits per character of a registry version (its SavedModel's serving_default and
    its own characters.json): the relative gate's baseline on this run's test split."""
    import tensorflow as tf

    folder = pathlib.Path(version_dir)
    vocabulary = characters.read(folder / characters.FILE)
    serve = tf.saved_model.load(str(registry.saved_model_dir(folder))).signatures["serving_default"]
    documents = document_ids(texts, characters.index_of(vocabulary["tokens"]))
    total, count = 0.0, 0
    for ids in documents:
        logits = serve(tokens=tf.constant(ids[None, :-1]))["logits"].numpy()[0]
        total += float(characters.bits(logits, ids[1:]).sum())
        count += len(ids) - 1
    return total / count


def run(inputs, outputs, config, context) -> dict[str, Any]:
    from edgepipe.models import char_lstm
    from edgepipe.models.keras import keras

    task = tasks.get(config.task)
    examples = inputs["examples"].path
    model_dir = pathlib.Path(inputs["model"].path)
    model_info = artifacts.read_model_info(model_dir)
    vocabulary = characters.read(model_dir / characters.FILE)
    tokens, units = vocabulary["tokens"], vocabulary["units"]
    index = characters.index_of(tokens)
    model = keras.models.load_model(model_dir / artifacts.KERAS_MODEL, compile=False)
    stateful = char_lstm.with_state(model)
    splits, test_scored = {}, None
    for split in ("validation", "test"):
        ids, texts = examples_io.load_texts(examples, split)
        documents = document_ids(texts, index)
        scored = score_keras(stateful, documents, model_info["state_shape"])
        splits[split] = {**summary(scored), "num_examples": len(texts)}
        if split == "test":
            test_ids, test_texts, test_documents, test_scored = ids, texts, documents, scored
    if not splits["test"]["characters"]:
        raise ValueError(f"{examples}: the test split is empty; there is nothing to evaluate.")
    unknown = int(sum((ids[1:-1] == characters.UNK_ID).sum() for ids in test_documents))
    value = splits["test"]["bits_per_char"]
    blessing = gates.bless(task, value, (config.max_bits_per_char,
                                         config.max_bits_per_char_increase),
                           config.registry, inputs["model"].key, inputs["examples"].key, [],
                           lambda version_dir: version_bits(version_dir, test_texts))
    metrics = {"bits_per_char": value, "perplexity": splits["test"]["perplexity"],
               "num_examples": splits["test"]["num_examples"],
               "characters": splits["test"]["characters"], "unknown_characters": unknown,
               "units": units, "splits": splits, "blessing": blessing}
    artifacts.write_json(pathlib.Path(outputs["evaluation"], artifacts.METRICS), metrics)
    artifacts.write_json(pathlib.Path(outputs["evaluation"], artifacts.SINGLED_OUT), {
        "surprising_characters": surprising(test_ids, test_documents, test_scored, tokens,
                                            units, config.singled_out_examples)})
    gates.write(outputs["evaluation"], blessing)
    context.log.info("%s: test %.4f bits per character (perplexity %.3f) over %d characters; "
                     "%s", "BLESSED" if blessing["blessed"] else "NOT_BLESSED", value,
                     metrics["perplexity"], metrics["characters"], blessing["reason"])
    return {"bits_per_char": value, "perplexity": metrics["perplexity"],
            "validation_bits_per_char": splits["validation"]["bits_per_char"],
            "num_examples": metrics["num_examples"], "characters": metrics["characters"],
            "blessed": blessing["blessed"], "reason": blessing["reason"]}
