"""The one tokenizer of text models: tokens, vocabulary order and file, ids and padding."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.contracts import model_inputs, text_tokens

VOCABULARY = ["[PAD]", "[UNK]", "the", "a", "don't", "cat"]


def test_tokenize_lowercases_and_keeps_inner_apostrophes():
    assert text_tokens.tokenize("The CAT's hat -- don't 'quote' me, 2B_or_not!") == [
        "the", "cat's", "hat", "don't", "quote", "me", "2b_or_not"]
    assert text_tokens.tokenize("  \n\t%% ") == []


def test_vocabulary_is_reserved_ids_then_counts_then_tokens():
    counts = {"b": 3, "a": 3, "c": 5, "rare": 1, "d": 2}
    assert text_tokens.vocabulary_from_counts(counts, size=10) == [
        "[PAD]", "[UNK]", "c", "a", "b", "d", "rare"]
    assert text_tokens.vocabulary_from_counts(counts, size=4) == ["[PAD]", "[UNK]", "c", "a"]
    assert text_tokens.vocabulary_from_counts(counts, size=10, min_count=3) == [
        "[PAD]", "[UNK]", "c", "a", "b"]
    with pytest.raises(ValueError, match="vocabulary_size to 3 or more"):
        text_tokens.vocabulary_from_counts(counts, size=2)


def test_vocabulary_file_round_trips_and_bad_files_name_themselves(tmp_path):
    path = tmp_path / "vocabulary.txt"
    text_tokens.write_vocabulary(path, [*VOCABULARY, "café"])
    assert path.read_text("utf-8").splitlines()[6] == "café"
    assert text_tokens.read_vocabulary(path) == [*VOCABULARY, "café"]
    bad = tmp_path / "bad.txt"
    bad.write_text("the\n[PAD]\n[UNK]\n")
    with pytest.raises(ValueError, match=f"{bad}.*starts with"):
        text_tokens.read_vocabulary(bad)
    bad.write_bytes(b"[PAD]\n[UNK]\n\xff\n")
    with pytest.raises(ValueError, match=f"{bad}.*not UTF-8"):
        text_tokens.read_vocabulary(bad)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        text_tokens.read_vocabulary(tmp_path / "missing.txt")


def test_encode_pads_truncates_and_marks_unknown_tokens():
    texts = ["The cat", "a dog, the cat, a cat", ""]
    pre = text_tokens.encode(texts, VOCABULARY, 4, "pre")
    post = text_tokens.encode(texts, VOCABULARY, 4, "post")
    assert pre.dtype == np.int32 and pre.shape == (3, 4)
    # "pre" keeps the LAST tokens and pads before them; "post" the first, padding after.
    assert pre.tolist() == [[0, 0, 2, 5], [2, 5, 3, 5], [0, 0, 0, 0]]
    assert post.tolist() == [[2, 5, 0, 0], [3, 1, 2, 5], [0, 0, 0, 0]]
    with pytest.raises(ValueError, match="padding 'middle'"):
        text_tokens.encode(texts, VOCABULARY, 4, "middle")


def test_prepare_takes_raw_strings_or_token_ids_with_the_models_vocabulary():
    model_json = {"input_feature": "text", "input_shape": [3], "padding": "pre",
                  "vocabulary": VOCABULARY}
    batch = model_inputs.prepare(model_json, np.array(["A cat, DON'T!", "the"]))
    assert batch.dtype == np.int32
    assert batch.tolist() == [[3, 5, 4], [0, 0, 2]]
    assert model_inputs.prepare(model_json, [[2, 5], "cat"]).tolist() == [[0, 2, 5], [0, 0, 5]]
    with pytest.raises(ValueError, match=r"token ids in 0\.\.5"):
        model_inputs.prepare(model_json, [[2, 6]])
