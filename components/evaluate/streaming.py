"""The evaluate stage's streaming figures for keyword models (audio examples): a long
recording built from the test split, scanned the way `edgepipe listen` scans a file
(edgepipe.contracts.keyword_stream), with the misses and the false accepts per hour at the
configured threshold.

The stream: test keyword clips in a seeded order, each preceded by 1-2 s of background (test
`silence` clips) and, every third or so, by a test `unknown` word: what a device hears between
commands. Each keyword's true time is its clip's start plus the word's onset (the first 10 ms
frame within 20 dB of the clip's loudest), so a detection is matched against the word itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.contracts import keyword_stream

UNKNOWN, SILENCE = "unknown", "silence"
SEED = 23


def onset(clip: np.ndarray, sample_rate: int) -> float:
    """Seconds from the clip's start to its first frame within 20 dB of its loudest."""
    frame = max(1, sample_rate // 100)
    frames = clip[:len(clip) // frame * frame].reshape(-1, frame).astype(np.float64)
    levels = 10 * np.log10(np.maximum((frames ** 2).mean(axis=1), 1e-12))
    return float(np.flatnonzero(levels >= levels.max() - 20.0)[0] * frame / sample_rate)


def build(test: dict, class_names: list[str], keywords: list[str], sample_rate: int,
          seconds: float) -> tuple[np.ndarray, list[dict]]:
    """(the stream's samples, the truth [{"time", "label", "id"}]) of about `seconds`."""
    rng = np.random.default_rng(SEED)
    audio, labels = test["audio"], test["label"]
    kinds = {name: np.flatnonzero(labels == class_names.index(name))
             for name in (UNKNOWN, SILENCE) if name in class_names}
    spoken = np.flatnonzero(np.isin(labels, [class_names.index(word) for word in keywords]))
    background = (np.concatenate([audio[index] for index in kinds[SILENCE]])
                  if len(kinds.get(SILENCE, [])) else
                  0.003 * rng.standard_normal(10 * sample_rate).astype(np.float32))
    pieces, truth, position = [], [], 0

    def add(samples):
        nonlocal position
        pieces.append(samples.astype(np.float32))
        position += len(samples)

    for index in rng.permutation(spoken) if len(spoken) else []:
        if position >= seconds * sample_rate:
            break
        gap = int(rng.uniform(1.0, 2.0) * sample_rate)
        start = int(rng.integers(0, max(1, len(background) - gap)))
        add(np.resize(background[start:start + gap], gap))
        if len(kinds.get(UNKNOWN, [])) and rng.random() < 0.3:
            add(audio[rng.choice(kinds[UNKNOWN])])
            add(np.resize(background[:sample_rate // 2], sample_rate // 2))
        clip = audio[index]
        truth.append({"time": (position + onset(clip, sample_rate) * sample_rate) / sample_rate,
                      "label": class_names[labels[index]], "id": str(test["id"][index])})
        add(clip)
    add(np.resize(background, 2 * sample_rate))
    return np.concatenate(pieces), truth


def evaluate(test: dict, class_names: list[str], sample_rate: int, score, config) -> dict[str, Any]:
    """The streaming figures of a model whose `score` maps [N, samples] windows to class
    scores, on a stream of about config.stream_minutes built from `test`."""
    keywords = [name for name in class_names if name not in (UNKNOWN, SILENCE)]
    settings = keyword_stream.Settings(
        hop_ms=config.stream_hop_ms, average_ms=config.stream_average_ms,
        threshold=config.stream_threshold, suppression_ms=config.stream_suppression_ms,
        tolerance_ms=config.stream_tolerance_ms)
    samples, truth = build(test, class_names, keywords, sample_rate,
                           60.0 * config.stream_minutes)
    length = test["audio"].shape[1]
    # big chunks: each `score` call loads the SavedModel again (64 MB of windows at 16 kHz)
    scores, ends = keyword_stream.scan(samples, length,
                                       max(1, int(sample_rate * settings.hop_ms / 1000)), score,
                                       chunk=1024)
    detections = keyword_stream.recognize(scores, ends, sample_rate, class_names, keywords,
                                          settings)
    result = keyword_stream.match(detections, truth, settings, len(samples) / sample_rate)
    return {**result, "threshold": settings.threshold, "hop_ms": settings.hop_ms,
            "average_ms": settings.average_ms, "suppression_ms": settings.suppression_ms,
            "tolerance_ms": settings.tolerance_ms}
