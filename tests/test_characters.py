"""The character vocabulary and generation rules (edgepipe.contracts.characters): pure
Python, shared by the stages, `edgepipe generate` and the server."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.contracts import characters


def test_vocabulary_orders_by_count_and_maps_rare_and_unseen_characters_to_unknown():
    tokens = characters.vocabulary_from_counts({"a": 5, "b": 5, "c": 1, " ": 9}, min_count=2)
    assert tokens == ["[START]", "[UNK]", " ", "a", "b"]
    index = characters.index_of(tokens)
    assert characters.encode("abc\u00e6", index) == [3, 4, 1, 1]
    assert list(characters.stream(["ab", "a"], index)) == [0, 3, 4, 0, 3]


def test_bytes_units_read_utf8_bytes_and_write_them_back():
    units = characters.as_units("\u00e6 \u2603", "bytes")
    assert len(units) == len("\u00e6 \u2603".encode("utf-8")) and max(map(ord, units)) < 256
    tokens = ["[START]", "[UNK]", *sorted(set(units))]
    ids = characters.encode(units, characters.index_of(tokens))
    assert characters.decode(ids, tokens, "bytes") == "\u00e6 \u2603"


@pytest.mark.parametrize("prompt, length, temperature, message", [
    ("", 0, 1.0, "length 0 is outside"),
    ("", characters.MAX_LENGTH + 1, 1.0, "outside 1..2,000"),
    ("x" * (characters.MAX_PROMPT + 1), 5, 1.0, "more than the limit"),
    ("", 5, -0.1, "is negative"),
    ("", 5, float("nan"), "must be a number"),
])
def test_requests_past_a_limit_are_refused_saying_why(prompt, length, temperature, message):
    with pytest.raises(ValueError, match=message):
        characters.check_request(prompt, length, temperature)


def test_temperature_zero_is_greedy_and_never_picks_start_or_unknown():
    logits = np.array([9.0, 8.0, 1.0, 3.0, 2.0])
    rng = np.random.default_rng(0)
    assert characters.choose(logits, 0.0, rng) == 3
    draws = {characters.choose(logits, 1.0, np.random.default_rng(seed)) for seed in range(50)}
    assert draws <= {2, 3, 4} and len(draws) > 1
