"""The vocabulary of text models, computed in a Beam pass over the training texts.

`ComputeVocabulary(size, min_count)` turns a PCollection of raw texts into one element: the
vocabulary list ([PAD], [UNK], then tokens by descending count, ties by token; see
edgepipe.contracts.text_tokens, whose tokenizer it applies). The counting is a CombinePerKey, so it
scales out on any runner; only the (small) per-token counts meet in one place for the final
ordering. `TokenLengths` counts the tokens per text, for the length statistics that set a text
model's default input length. The statistics stage runs both (vocabulary.txt and the token
lengths in statistics.json); Beam is imported inside the factories.
"""

from __future__ import annotations

import json
from typing import Any

from edgepipe.contracts import storage, text_tokens

VOCABULARY_FILE = text_tokens.VOCABULARY_FILE


def _ordered(counts: list[tuple[str, int]], size: int, min_count: int) -> list[str]:
    return text_tokens.vocabulary_from_counts(dict(counts), size, min_count)


def ComputeVocabulary(size: int, min_count: int = 1):
    """texts -> one vocabulary list (always exactly one element, also for no texts)."""
    import apache_beam as beam

    @beam.ptransform_fn
    def compute_vocabulary(texts):
        return (texts
                | "Tokenize" >> beam.FlatMap(text_tokens.tokenize)
                | "Count" >> beam.combiners.Count.PerElement()
                | "Gather" >> beam.combiners.ToList()
                | "Order" >> beam.Map(_ordered, size, min_count))

    return compute_vocabulary()


def _token_count(text: str) -> int:
    return len(text_tokens.tokenize(text))


def TokenLengths():
    """texts -> one {token count: number of texts} dict."""
    import apache_beam as beam

    @beam.ptransform_fn
    def token_lengths(texts):
        return (texts
                | "CountTokens" >> beam.Map(_token_count)
                | "PerLength" >> beam.combiners.Count.PerElement()
                | "AsDict" >> beam.combiners.ToDict())

    return token_lengths()


def summary(vocabulary: list[str], size: int, min_count: int) -> dict[str, Any]:
    """What statistics.json records about the vocabulary (the file holds the tokens)."""
    return {"file": VOCABULARY_FILE, "size": len(vocabulary), "max_size": size,
            "min_token_count": min_count, "computed_on": "train",
            "reserved": {text_tokens.PAD: text_tokens.PAD_ID, text_tokens.UNK: text_tokens.UNK_ID}}


def _text_of(serialized: bytes, examples_dir: str, decode) -> str:
    value, _ = decode(serialized, examples_dir, "text")
    return value or ""


def TextStatistics(examples_dir: str, decode, prefix: str, vocabulary_size: int | None = None,
                   min_count: int = 1):
    """Serialized text examples -> `<prefix>_tokens.json` (token count: texts) and, when
    `vocabulary_size` is given (the train split), `<prefix>_vocabulary.json` (the list).
    `decode(serialized, examples_dir, "text")` is the statistics stage's decoder."""
    import apache_beam as beam

    def write(collection, name: str):
        return (collection
                | f"{name}Json" >> beam.Map(json.dumps)
                | f"Write{name}" >> beam.io.WriteToText(
                    f"{prefix}_{name.lower()}", file_name_suffix=".json", shard_name_template=""))

    @beam.ptransform_fn
    def text_statistics(serialized):
        texts = serialized | "Texts" >> beam.Map(_text_of, examples_dir, decode)
        write(texts | "TokenLengths" >> TokenLengths(), "Tokens")
        if vocabulary_size is not None:
            write(texts | "Vocabulary" >> ComputeVocabulary(vocabulary_size, min_count),
                  "Vocabulary")
        return beam.pvalue.PDone(serialized.pipeline)

    return text_statistics()


def read_results(sums_dir, split: str) -> tuple[dict[int, int], list[str] | None]:
    """({token count: texts}, vocabulary or None) that TextStatistics wrote for a split."""
    lengths = {int(length): count for length, count in json.loads(storage.read_text(
        storage.join(sums_dir, f"{split}_tokens.json"))).items()}
    vocabulary_path = storage.join(sums_dir, f"{split}_vocabulary.json")
    vocabulary = (json.loads(storage.read_text(vocabulary_path))
                  if storage.isfile(vocabulary_path) else None)
    return lengths, vocabulary
