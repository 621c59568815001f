"""The generation config against a character n-gram model on the same splits, in one run.

    nice -n 10 .venv/bin/python benchmarks/char_ngram_baseline.py
                                      [configs/fortunes_generation.toml] [--root DIR]
                                      [--order 5]

Runs the pipeline (cached stages are reused; the train stage's own wall time is read from
its record), reads the train and test documents the ingest stage cut (by a hash of each id)
and the character vocabulary the statistics stage computed, fits an interpolated Kneser-Ney
character model of `--order` on the train documents (timed) and scores the test documents
exactly as evaluate scores the LSTM: every document from its start ([START] padding as the
context), each character and the end predicted, unknown characters as [UNK]. Prints both test
bits per character with the wall time of each, and whether the LSTM's are lower.

Kneser-Ney (Chen & Goodman's interpolated form, one absolute discount per order estimated as
n1 / (n1 + 2 n2) from that order's count-of-counts): the highest order uses counts, the lower
orders continuation counts (in how many distinct contexts a sequence follows), and order 1
interpolates with the uniform distribution over the vocabulary, so no character has
probability 0.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class KneserNey:
    """Interpolated Kneser-Ney over integer ids 0..vocabulary-1."""

    def __init__(self, order: int, vocabulary: int, pad: int):
        self.order, self.vocabulary, self.pad = order, vocabulary, pad

    def padded(self, ids: list[int]) -> list[int]:
        return [self.pad] * (self.order - 1) + ids

    def fit(self, documents: list[list[int]]) -> "KneserNey":
        """`documents`: the ids to predict of each document (its characters, then the end)."""
        top = collections.Counter()
        for ids in documents:
            sequence = self.padded(ids)
            for end in range(self.order - 1, len(sequence)):
                top[tuple(sequence[end - self.order + 1:end + 1])] += 1
        # counts[n]: n-gram -> count (the highest order) or continuation count (lower ones)
        self.counts = {self.order: top}
        for n in range(self.order - 1, 0, -1):
            continuation = collections.Counter()
            for gram in self.counts[n + 1]:
                continuation[gram[1:]] += 1
            self.counts[n] = continuation
        self.totals, self.types, self.discounts = {}, {}, {}
        for n, table in self.counts.items():
            totals, types = collections.Counter(), collections.Counter()
            for gram, count in table.items():
                totals[gram[:-1]] += count
                types[gram[:-1]] += 1
            self.totals[n], self.types[n] = totals, types
            of_counts = collections.Counter(min(count, 3) for count in table.values())
            n1, n2 = of_counts[1], of_counts[2]
            self.discounts[n] = n1 / (n1 + 2 * n2) if n1 + n2 else 0.5
        return self

    def probability(self, context: tuple[int, ...], target: int) -> float:
        probability = 1.0 / self.vocabulary
        for n in range(1, self.order + 1):
            history = context[len(context) - n + 1:] if n > 1 else ()
            total = self.totals[n].get(history, 0)
            if not total:
                continue  # an unseen history: the lower order's estimate stands
            discount = self.discounts[n]
            count = self.counts[n].get(history + (target,), 0)
            probability = (max(count - discount, 0.0) / total
                           + discount * self.types[n][history] / total * probability)
        return probability

    def bits(self, documents: list[list[int]]) -> tuple[float, int]:
        """(total bits, predictions) over the documents."""
        total, count = 0.0, 0
        for ids in documents:
            sequence = self.padded(ids)
            for end in range(self.order - 1, len(sequence)):
                context = tuple(sequence[end - self.order + 1:end])
                total -= math.log2(self.probability(context, sequence[end]))
                count += 1
        return total, count


def documents(examples, split: str, index: dict) -> list[list[int]]:
    from edgepipe.components.shared import examples_io
    from edgepipe.contracts import characters

    _, texts = examples_io.load_texts(examples, split)
    return [characters.encode(text, index) + [characters.START_ID] for text in texts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(REPO / "configs/fortunes_generation.toml"))
    parser.add_argument("--root", help="artifact root (default: the config's)")
    parser.add_argument("--order", type=int, default=5)
    args = parser.parse_args(argv)

    import edgepipe
    from edgepipe.contracts import artifacts, characters

    started = time.monotonic()
    result = edgepipe.run(args.config, root=args.root, progress=False)
    pipeline_seconds = time.monotonic() - started
    stages = {stage["name"]: stage for stage in result.summary["stages"]}
    train_record = stages["train"]
    examples = result.artifacts["ingest"]["examples"]
    vocabulary = characters.read(pathlib.Path(result.artifacts["statistics"]["statistics"])
                                 / characters.FILE)
    index = characters.index_of(vocabulary["tokens"])
    evaluate = result.metrics["evaluate"]
    quantize = result.metrics["quantize"]

    started = time.monotonic()
    model = KneserNey(args.order, len(vocabulary["tokens"]), characters.START_ID)
    model.fit(documents(examples, "train", index))
    fit_seconds = time.monotonic() - started
    started = time.monotonic()
    total, count = model.bits(documents(examples, "test", index))
    score_seconds = time.monotonic() - started
    ngram = total / count
    lstm = evaluate["bits_per_char"]
    print(f"\n{result.summary['pipeline']}: {count:,} test predictions "
          f"({evaluate['characters']:,} scored by evaluate), vocabulary "
          f"{len(vocabulary['tokens'])}")
    print(f"  {args.order}-gram Kneser-Ney   {ngram:.4f} bits/char   fit {fit_seconds:6.1f} s, "
          f"score {score_seconds:6.1f} s (discounts "
          + ", ".join(f"{n}: {d:.2f}" for n, d in sorted(model.discounts.items())) + ")")
    print(f"  char_lstm (Keras)     {lstm:.4f} bits/char   train stage "
          f"{train_record.get('seconds', float('nan')):6.1f} s "
          f"({train_record.get('status')}; {train_record.get('metrics', {}).get('epochs')} "
          f"epochs), pipeline this run {pipeline_seconds:.1f} s")
    for variant in quantize["variants"]:
        print(f"  TFLite {variant['name']:<14} {variant['bits_per_char']:.4f} bits/char "
              f"({variant['bits_per_char_difference']:+.4f} vs Keras on "
              f"{quantize['scored_characters']:,} test characters), "
              f"{variant['size_bytes']:,} bytes")
    print(f"  deployable: {quantize['deployable']['reason']}")
    beaten = lstm < ngram
    print(f"  {'OK' if beaten else 'NOT MET'}: the LSTM's test bits per character are "
          f"{'below' if beaten else 'not below'} the {args.order}-gram's "
          f"({lstm - ngram:+.4f})")
    return 0 if beaten else 1


if __name__ == "__main__":
    sys.exit(main())
