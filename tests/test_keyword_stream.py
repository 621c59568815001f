"""edgepipe.contracts.keyword_stream: the smoothing, detection and scoring that `edgepipe
listen` and the evaluate stage's streaming figures share, on scores made up by hand."""

from __future__ import annotations

import numpy as np

from edgepipe.contracts import keyword_stream

NAMES = ["yes", "no", "unknown", "silence"]
RATE = 1000  # samples per second: a window every 100 samples is a hop of 100 ms
SETTINGS = keyword_stream.Settings(hop_ms=100.0, average_ms=300.0, threshold=0.6,
                                   suppression_ms=500.0, tolerance_ms=1500.0)


def scores_for(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One window per label, every 100 ms: 0.9 on that label, the rest spread."""
    scores = np.full((len(labels), len(NAMES)), 0.1 / (len(NAMES) - 1))
    for row, label in enumerate(labels):
        scores[row, NAMES.index(label)] = 0.9
    return scores, (np.arange(len(labels)) + 10) * 100  # window ends, in samples


def detect(labels):
    scores, ends = scores_for(labels)
    return keyword_stream.recognize(scores, ends, RATE, NAMES, ["yes", "no"], SETTINGS)


def test_a_word_heard_in_many_windows_is_one_detection():
    found = detect(["silence"] * 5 + ["yes"] * 12 + ["silence"] * 5)
    assert [item["label"] for item in found] == ["yes"]
    assert found[0]["time"] == 1.6  # the third "yes" window: the average passes 0.6 there


def test_two_words_apart_are_two_detections_and_unknown_is_none():
    found = detect(["yes"] * 4 + ["silence"] * 6 + ["no"] * 4 + ["unknown"] * 8)
    assert [item["label"] for item in found] == ["yes", "no"]


def test_a_second_word_within_the_suppression_time_is_not_reported():
    assert [item["label"] for item in detect(["yes"] * 3 + ["no"] * 2)] == ["yes"]


def test_match_counts_hits_wrong_words_misses_and_false_accepts():
    detections = [{"time": 1.5, "label": "yes"}, {"time": 5.2, "label": "yes"},
                  {"time": 20.0, "label": "no"}]
    truth = [{"time": 1.0, "label": "yes"}, {"time": 5.0, "label": "no"},
             {"time": 10.0, "label": "no"}]
    result = keyword_stream.match(detections, truth, SETTINGS, seconds=36.0)
    assert (result["detected"], result["wrong_word"], result["misses"],
            result["false_accepts"]) == (1, 1, 1, 1)
    assert result["false_accepts_per_hour"] == 100.0
    assert abs(result["miss_rate"] - 2 / 3) < 1e-9


def test_scan_scores_every_window_in_bounded_batches():
    seen = []

    def score(batch):
        seen.append(len(batch))
        return np.tile(batch[:, :1], (1, len(NAMES)))

    samples = np.arange(5000, dtype=np.float32)
    scores, ends = keyword_stream.scan(samples, 1000, 100, score, chunk=7)
    assert len(scores) == 41 and max(seen) <= 7 and ends[-1] == 5000
    assert scores[3, 0] == 300.0  # the window starting at sample 300
