"""Keyword spotting in a continuous recording, the way Speech Commands' RecognizeCommands does
it: a clip-long window slides over the samples every `hop`, the model scores each window, the
scores are averaged over the last `average` of windows, and a keyword is detected when the top
averaged class is a keyword above `threshold`, at least `suppression` after the previous
detection, and the top has left the previous detection's keyword since (one utterance scores
high in several windows in a row: it is one detection, however long it lasts).

Numpy only: `edgepipe listen` (a device-like LiteRT run) and the evaluate stage (its stream of
test clips) share it, so both count the same way. `match` scores detections against where
the keywords really are, as Speech Commands' StreamingAccuracyStats: a detection within
`tolerance` after a keyword's start with its label is a hit, with another label a wrong
word, elsewhere a false accept; a keyword with no hit is a miss.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Settings:
    hop_ms: float = 100.0       # a window every hop
    average_ms: float = 500.0   # scores averaged over the windows of the last average_ms
    threshold: float = 0.7      # averaged score a keyword needs
    suppression_ms: float = 1000.0  # no second detection sooner than this
    tolerance_ms: float = 1500.0    # how long after a keyword's start its detection may come


def scan(samples: np.ndarray, length: int, hop: int, score, chunk: int = 256):
    """(scores [W, classes] of windows of `length` samples every `hop`, the end sample of
    each window), `score` called on [<= chunk, length] batches so memory stays bounded for
    any recording length; a recording shorter than one window is padded with zeros."""
    samples = np.asarray(samples, np.float32)
    if len(samples) < length:
        samples = np.concatenate([samples, np.zeros(length - len(samples), np.float32)])
    starts = np.arange(0, len(samples) - length + 1, hop)
    scores = [score(samples[part[:, None] + np.arange(length)[None, :]])
              for part in np.array_split(starts, max(1, -(-len(starts) // chunk)))]
    return np.concatenate(scores), starts + length


def recognize(scores: np.ndarray, ends: np.ndarray, sample_rate: int, class_names: list[str],
              keywords: list[str], settings: Settings) -> list[dict]:
    """Detections {"time": s (the window's end), "label", "score"} from per-window scores."""
    average = max(1, int(round(settings.average_ms / settings.hop_ms)))
    keyword_index = {class_names.index(word) for word in keywords}
    detections: list[dict] = []
    last, last_label, armed = -np.inf, None, True
    for index in range(len(scores)):
        smoothed = scores[max(0, index - average + 1):index + 1].mean(axis=0)
        top = int(smoothed.argmax())
        time = float(ends[index]) / sample_rate
        heard = top in keyword_index and smoothed[top] >= settings.threshold
        if not heard or top != last_label:
            armed = True  # the previous keyword is over
        if heard and armed and (time - last) * 1000.0 >= settings.suppression_ms:
            detections.append({"time": round(time, 3), "label": class_names[top],
                               "score": round(float(smoothed[top]), 4)})
            last, last_label, armed = time, top, False
    return detections


def match(detections: list[dict], truth: list[dict], settings: Settings,
          seconds: float) -> dict:
    """Hits, misses, wrong words and false accepts of detections against the truth
    [{"time": start s, "label"}], with rates (misses per keyword, false accepts per hour)."""
    used = [False] * len(detections)
    hits = wrong = 0
    tolerance = settings.tolerance_ms / 1000.0
    for keyword in truth:
        candidates = [index for index, detection in enumerate(detections)
                      if not used[index]
                      and keyword["time"] <= detection["time"] <= keyword["time"] + tolerance]
        if not candidates:
            continue
        chosen = next((index for index in candidates
                       if detections[index]["label"] == keyword["label"]), candidates[0])
        used[chosen] = True
        if detections[chosen]["label"] == keyword["label"]:
            hits += 1
        else:
            wrong += 1
    false_accepts = used.count(False)
    total = len(truth)
    return {"keywords_in_stream": total, "detected": hits, "wrong_word": wrong,
            "misses": total - hits - wrong, "false_accepts": false_accepts,
            "miss_rate": (total - hits) / total if total else 0.0,
            "false_accepts_per_hour": false_accepts / seconds * 3600.0 if seconds else 0.0,
            "stream_seconds": seconds}
