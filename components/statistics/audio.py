"""Statistics of audio clips: level, clipping and spoken duration per class, and their checks.

Ingest stores each clip as float32 samples in [-1, 1] at one sample rate, padded or cut to one
length; these sums say what the recordings were like inside that frame. Per class: the RMS
level (dBFS), the share of clipped samples (|x| >= CLIP_LEVEL), and the active duration (the
span from the first to the last 10 ms frame louder than ACTIVE_DBFS), whose histogram shows
words cut at the clip's end. The checks: samples outside [-1, 1] or another clip length are
errors; a class with more than MAX_CLIPPED_SHARE of its samples clipped, or whose median
level is below QUIET_DBFS (a recording that is almost silence), is a warning.
"""

from __future__ import annotations

import numpy as np

CLIP_LEVEL = 0.999
ACTIVE_DBFS = -50.0
ACTIVE_BELOW_PEAK_DB = 20.0
QUIET_DBFS = -60.0
MAX_CLIPPED_SHARE = 0.001
FRAME_SECONDS = 0.01
LEVEL_BINS = np.arange(-100.0, 1.0, 5.0)  # dBFS, 5 dB wide
DURATION_BINS = 20


def create() -> dict:
    return {"samples": 0, "sum": 0.0, "sum_squares": 0.0, "min": np.inf, "max": -np.inf,
            "length": 0, "per_class": {}}


def _level_dbfs(value: np.ndarray) -> float:
    return float(20.0 * np.log10(max(np.sqrt(np.mean(value.astype(np.float64) ** 2)), 1e-5)))


def active_fraction(value: np.ndarray) -> float:
    """Share of the clip from its first to its last active frame (module docstring)."""
    # frames of 1/100 of the clip (10 ms of a 1 s clip): the result is a share of the clip
    frame = max(1, int(round(len(value) * FRAME_SECONDS)))
    frames = value[:len(value) // frame * frame].reshape(-1, frame).astype(np.float64)
    levels = 20 * np.log10(np.maximum(np.sqrt((frames ** 2).mean(axis=1)), 1e-10))
    loud = np.flatnonzero(levels > max(ACTIVE_DBFS, levels.max() - ACTIVE_BELOW_PEAK_DB))
    return float((loud[-1] - loud[0] + 1) / len(frames)) if loud.size else 0.0


def _new_class() -> dict:
    return {"count": 0, "samples": 0, "clipped": 0, "levels": [0] * (len(LEVEL_BINS) - 1),
            "active": [0] * DURATION_BINS, "lengths": {}}


def add(accumulator: dict, value: np.ndarray, label) -> None:
    accumulator["samples"] += value.size
    accumulator["sum"] += float(value.sum(dtype=np.float64))
    accumulator["sum_squares"] += float(np.square(value, dtype=np.float64).sum())
    accumulator["min"] = min(accumulator["min"], float(value.min()))
    accumulator["max"] = max(accumulator["max"], float(value.max()))
    accumulator["length"] = max(accumulator["length"], int(value.size))
    key = str(label)
    mine = accumulator["per_class"].setdefault(key, _new_class())
    mine["count"] += 1
    mine["samples"] += value.size
    mine["clipped"] += int((np.abs(value) >= CLIP_LEVEL).sum())
    level = min(max(_level_dbfs(value), LEVEL_BINS[0]), LEVEL_BINS[-1] - 1e-9)
    mine["levels"][int(np.searchsorted(LEVEL_BINS, level, side="right") - 1)] += 1
    mine["active"][min(int(active_fraction(value) * DURATION_BINS), DURATION_BINS - 1)] += 1
    mine["lengths"][str(value.size)] = mine["lengths"].get(str(value.size), 0) + 1


def merge(merged: dict, other: dict) -> None:
    for key in ("samples", "sum", "sum_squares"):
        merged[key] += other[key]
    merged["min"], merged["max"] = min(merged["min"], other["min"]), max(merged["max"],
                                                                         other["max"])
    merged["length"] = max(merged["length"], other["length"])
    for label, theirs in other["per_class"].items():
        mine = merged["per_class"].setdefault(label, _new_class())
        for key in ("count", "samples", "clipped"):
            mine[key] += theirs[key]
        for key in ("levels", "active"):
            mine[key] = [a + b for a, b in zip(mine[key], theirs[key])]
        for length, count in theirs["lengths"].items():
            mine["lengths"][length] = mine["lengths"].get(length, 0) + count


def _median_bin(counts: list, edges) -> float | None:
    total = sum(counts)
    if not total:
        return None
    index = int(np.searchsorted(np.cumsum(counts), total / 2.0))
    return float((edges[index] + edges[index + 1]) / 2.0)


def summarise(sums: dict, class_names: list[str], sample_rate: int) -> dict:
    """The statistics.json entry of the "audio" feature."""
    audio = sums["audio"]
    count = audio["samples"]
    mean = audio["sum"] / count if count else 0.0
    variance = max(audio["sum_squares"] / count - mean ** 2, 0.0) if count else 0.0
    seconds = [edge / DURATION_BINS * audio["length"] / sample_rate
               for edge in range(DURATION_BINS + 1)] if sample_rate else []
    per_class = {}
    for label, mine in sorted(audio["per_class"].items(), key=lambda item: int(item[0])):
        index = int(label)
        name = class_names[index] if 0 <= index < len(class_names) else label
        per_class[name] = {
            "count": mine["count"],
            "clipped_share": mine["clipped"] / mine["samples"] if mine["samples"] else 0.0,
            "median_level_dbfs": _median_bin(mine["levels"], LEVEL_BINS),
            "level_histogram": {"edges_dbfs": LEVEL_BINS.tolist(), "counts": mine["levels"]},
            "median_active_seconds": _median_bin(mine["active"], seconds) if seconds else None,
            "active_seconds_histogram": {"edges": seconds, "counts": mine["active"]},
            "lengths": mine["lengths"]}
    return {"type": "audio", "sample_rate": sample_rate, "clip_samples": audio["length"],
            "clip_seconds": audio["length"] / sample_rate if sample_rate else None,
            "mean": mean, "std": variance ** 0.5,
            "min": audio["min"] if count else None, "max": audio["max"] if count else None,
            "num_values": count, "missing": sums["value_missing"], "per_class": per_class}


def to_proto(feature, common, stats: dict, present: int, statistics_pb2) -> None:
    """TFDV's numeric statistics of the samples, the per-class figures as custom stats."""
    import json

    common.tot_num_values = stats["num_values"]
    common.min_num_values = common.max_num_values = stats["clip_samples"]
    common.avg_num_values = stats["num_values"] / present if present else 0.0
    numbers = feature.num_stats
    numbers.mean, numbers.std_dev = stats["mean"], stats["std"]
    numbers.min, numbers.max = stats["min"] or 0.0, stats["max"] or 0.0
    feature.custom_stats.add(name="sample_rate", num=stats["sample_rate"])
    feature.custom_stats.add(name="per_class", str=json.dumps(stats["per_class"]))


def add_to_schema(feature, stats: dict) -> None:
    feature.float_domain.min, feature.float_domain.max = -1.0, 1.0
    feature.shape.dim.add(size=int(stats["clip_samples"]))
    feature.annotation.comment.append(
        f"float32 audio samples in [-1, 1] at {stats['sample_rate']} Hz, "
        f"{stats['clip_samples']} per clip.")


def anomalies(stats: dict, expected: dict, report) -> None:
    if not stats["num_values"]:
        return
    if expected["shape"] and stats["clip_samples"] != expected["shape"][0]:
        report("audio", "error", f"clips of {stats['clip_samples']} samples, the schema "
               f"expects {expected['shape'][0]}")
    low = expected["low"] if expected["low"] is not None else -1.0
    high = expected["high"] if expected["high"] is not None else 1.0
    if stats["min"] < low or stats["max"] > high:
        report("audio", "error", f"samples span [{stats['min']:g}, {stats['max']:g}], outside "
               f"the schema's float_domain [{low:g}, {high:g}]")
    for name, mine in stats["per_class"].items():
        if mine["clipped_share"] > MAX_CLIPPED_SHARE:
            report("audio", "warning", f"class {name!r}: {mine['clipped_share']:.2%} of its "
                   f"samples are clipped (|x| >= {CLIP_LEVEL}); the recordings are too loud")
        level = mine["median_level_dbfs"]
        if level is not None and level < QUIET_DBFS and name != "silence":
            report("audio", "warning", f"class {name!r}: median level {level:.0f} dBFS, below "
                   f"{QUIET_DBFS:.0f} dBFS: its clips are nearly silent")
