"""The one tokenizer of text models: vocabulary pass, training, evaluate, quantize, report, serving.

Pure Python and numpy (no TensorFlow), so the model server and a device-side port can apply
exactly the rule the model was trained with, which the TFLite metadata restates:

- `tokenize`: lowercase, then the words of `TOKEN_PATTERN` (letters, digits and underscores,
  with inner apostrophes kept: "don't" is one token).
- ids: 0 is "[PAD]" (padding), 1 is "[UNK]" (a token outside the vocabulary); the vocabulary
  file lists them first, then the tokens by descending training count, ties by token.
- `encode`: token ids int32 [N, length], padded with 0 and cut to `length` by the padding
  rule of sequences: "pre" pads before and keeps the last tokens, "post" pads after and keeps
  the first ones.
"""

from __future__ import annotations

import pathlib
import re
from typing import Iterable, Mapping, Sequence

import numpy as np

from edgepipe.contracts import storage

TOKEN_PATTERN = r"\w+(?:'\w+)*"
VOCABULARY_FILE = "vocabulary.txt"  # in the statistics and model artifacts
PAD, UNK = "[PAD]", "[UNK]"
PAD_ID, UNK_ID = 0, 1
RESERVED = (PAD, UNK)
PADDINGS = ("pre", "post")

_TOKEN = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    """The tokens of one text: lowercase words (inner apostrophes kept)."""
    return _TOKEN.findall(text.lower())


def vocabulary_from_counts(counts: Mapping[str, int], size: int, min_count: int = 1) -> list[str]:
    """[PAD], [UNK], then at most `size - 2` tokens seen at least `min_count` times, by
    descending count, ties by token (the same list on every run and runner)."""
    if size < len(RESERVED) + 1:
        raise ValueError(f"vocabulary size {size} leaves no room for tokens besides {RESERVED}; "
                         "set [statistics] vocabulary_size to 3 or more.")
    kept = [(token, count) for token, count in counts.items()
            if count >= min_count and token not in RESERVED]
    kept.sort(key=lambda item: (-item[1], item[0]))
    return [*RESERVED, *(token for token, _ in kept[: size - len(RESERVED)])]


def write_vocabulary(path: str | pathlib.Path, tokens: Sequence[str]) -> None:
    """One token per line, UTF-8, id = line number (0-based)."""
    _check(tokens, path)
    storage.write_text(path, "".join(f"{token}\n" for token in tokens))


def read_vocabulary(path: str | pathlib.Path) -> list[str]:
    """The tokens of a vocabulary file written by `write_vocabulary`."""
    path = pathlib.Path(path)
    try:
        tokens = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise FileNotFoundError(f"{path}: cannot read the vocabulary ({error}); re-run the "
                                "statistics stage, which writes vocabulary.txt for text.") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error}); a vocabulary file holds one "
                         "UTF-8 token per line.") from None
    _check(tokens, path)
    return tokens


def _check(tokens: Sequence[str], where) -> None:
    if list(tokens[:2]) != list(RESERVED):
        raise ValueError(f"{where}: a vocabulary starts with {list(RESERVED)} (ids 0 and 1), "
                         f"this one with {list(tokens[:2])}; write it with "
                         "text_tokens.vocabulary_from_counts.")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"{where}: the vocabulary lists a token twice; each token needs "
                         "exactly one id.")
    bad = [token for token in tokens if not token or "\n" in token or token != token.strip()]
    if bad:
        raise ValueError(f"{where}: tokens {bad[:3]!r} are empty or hold whitespace; "
                         "tokens come from text_tokens.tokenize.")


def encode(texts: Iterable[str], vocabulary: Sequence[str], length: int,
           padding: str = "pre") -> np.ndarray:
    """Token ids int32 [N, length] of raw texts (unknown tokens -> 1, padding -> 0)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r} is not one of {PADDINGS}; set [train] padding "
                         "to 'pre' or 'post'.")
    if length < 1:
        raise ValueError(f"sequence length {length}: a text model reads at least one token.")
    index = token_index(vocabulary)
    return pad_ids([ids_of(str(text), index) for text in texts], length, padding)


def token_index(vocabulary: Sequence[str]) -> dict[str, int]:
    """{token: id} of a vocabulary list."""
    return {token: position for position, token in enumerate(vocabulary)}


def ids_of(text: str, index: Mapping[str, int]) -> list[int]:
    """The ids of every token of `text` (unknown tokens -> UNK_ID), before padding."""
    return [index.get(token, UNK_ID) for token in tokenize(text)]


def pad_ids(rows: Sequence[Sequence[int]], length: int, padding: str = "pre") -> np.ndarray:
    """int32 [N, length] from lists of token ids of any length, by the padding rule."""
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r} is not one of {PADDINGS}; set [train] padding "
                         "to 'pre' or 'post'.")
    batch = np.full((len(rows), length), PAD_ID, dtype=np.int32)
    for index, row in enumerate(rows):
        kept = list(row[-length:] if padding == "pre" else row[:length])
        if not kept:
            continue
        if padding == "pre":
            batch[index, length - len(kept):] = kept
        else:
            batch[index, :len(kept)] = kept
    return batch


def describe(vocabulary: Sequence[str], length: int, padding: str) -> dict:
    """The tokenizer as data, for model.json readers and the TFLite metadata."""
    return {"lowercase": True, "token_pattern": TOKEN_PATTERN, "pad_id": PAD_ID,
            "unknown_id": UNK_ID, "length": int(length), "padding": padding,
            "vocabulary_size": len(vocabulary)}
