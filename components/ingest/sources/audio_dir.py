"""`audio_dir`: spoken words in the Speech Commands layout, one example per clip ("audio").

    <train>/<word>/<speaker>_nohash_<n>.wav     one folder per word
    <train>/_background_noise_/*.wav            long noise recordings (optional)
    <train>/validation_list.txt, testing_list.txt   "<word>/<file>" per line (optional)

Each clip is decoded (edgepipe.contracts.wav: 8/16/24/32-bit PCM or float, any channel count
averaged to mono), resampled to `sample_rate` and padded with zeros or cut to `clip_seconds`:
the "audio" feature is float32 [sample_rate * clip_seconds] in [-1, 1]. Unreadable, truncated,
empty and all-silent files are quarantined with their reason.

Classes: with `keywords`, those words, then `unknown` (the other words, `unknown_share` clips
per keyword clip of each split, chosen by a hash of the id) and `silence` (clips cut at
seeded places and levels from the background noise, `silence_share` per keyword clip). Without
`keywords`, one class per word folder (`class_names`, default all, sorted).

Splits: the two lists when present (the rest is train), else a hash of the speaker part of the
file name (what precedes `_nohash_`), so one speaker never appears in two splits. The split of
each record is fixed here (the record's "split"), not by a hash of its id downstream.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib

import numpy as np

from edgepipe.components.ingest.sources.common import (class_folders, file_state, read_bytes,
                                                        rejection)
from edgepipe.contracts import wav

KIND = "audio_dir"
FIELDS = ("train", "sample_rate", "clip_seconds", "keywords", "unknown_share", "silence_share")
REQUIRED = ("train",)
NOISE_FOLDER = "_background_noise_"
UNKNOWN, SILENCE = "unknown", "silence"
CHUNK_FILES = 200
# A word clip is seconds long: a larger file is refused unread (a 1 s clip at 48 kHz,
# 32-bit, stereo is 384 KB).
MAX_CLIP_FILE_BYTES = 16 << 20
MAX_NOISE_FILE_BYTES = 1 << 30
SILENT_PEAK = 2.0 / 32768  # below two steps of 16-bit PCM everywhere: nothing was recorded


def validation_bucket(text: str) -> float:
    """A number in [0, 1) fixed by `text` (records.validation_bucket's rule; importing it
    here would make the sources and the record path import each other)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def clip_samples(config) -> int:
    return int(round(config.sample_rate * config.clip_seconds))


def speaker(path: str) -> str:
    name = pathlib.PurePosixPath(path).name
    return name.split("_nohash_")[0] if "_nohash_" in name else pathlib.PurePosixPath(name).stem


@functools.lru_cache(maxsize=8)
def _plan(config) -> dict:
    """Which file goes to which split and class, and how many silence clips each split gets."""
    root = pathlib.Path(config.train)
    folders = class_folders(config.train, (".wav",))
    noise = folders.pop(NOISE_FOLDER, [])
    lists = {split: root / name for split, name in (("validation", "validation_list.txt"),
                                                    ("test", "testing_list.txt"))}
    listed = {split: {line.strip() for line in path.read_text().splitlines() if line.strip()}
              for split, path in lists.items() if path.is_file()}

    def split_of(word: str, path: str) -> str:
        key = f"{word}/{pathlib.PurePosixPath(path).name}"
        if listed:
            return next((split for split, names in listed.items() if key in names), "train")
        bucket = validation_bucket(speaker(path))
        if bucket < config.test_fraction:
            return "test"
        bucket = (bucket - config.test_fraction) / (1.0 - config.test_fraction)
        return "validation" if bucket < config.validation_fraction else "train"

    keywords = list(config.keywords)
    if keywords:
        missing = [word for word in keywords if word not in folders]
        if missing:
            raise ValueError(f"{config.train}: no folder for keyword(s) {missing}; it has "
                             f"{sorted(folders)}. Fix [ingest] keywords.")
        names = keywords + [UNKNOWN] + ([SILENCE] if config.silence_share > 0 else [])
        if config.silence_share > 0 and not noise:
            raise ValueError(f"{config.train}: [ingest] silence_share = {config.silence_share} "
                             f"needs background noise in {NOISE_FOLDER}/; add the folder or set "
                             "silence_share = 0.")
    else:
        names = list(config.class_names or sorted(folders))
    files: dict[str, list] = {}  # split -> [(word, path, class index)]
    unknown: dict[str, list] = {}
    for word, paths in folders.items():
        for path in paths:
            split = split_of(word, path)
            if not keywords:
                files.setdefault(split, []).append((word, path, names.index(word)
                                                    if word in names else None))
            elif word in keywords:
                files.setdefault(split, []).append((word, path, names.index(word)))
            else:
                unknown.setdefault(split, []).append((word, path, names.index(UNKNOWN)))
    silence = {}
    for split in ("train", "validation", "test"):
        count = len(files.get(split, []))
        chosen = sorted(unknown.get(split, []),
                        key=lambda item: validation_bucket(f"{item[0]}/{item[1]}"))
        files.setdefault(split, []).extend(chosen[:round(config.unknown_share * count)])
        silence[split] = round(config.silence_share * count) if keywords and noise else 0
    return {"names": names, "files": files, "noise": noise, "silence": silence,
            "unknown_available": sum(map(len, unknown.values()))}


ORIGIN = {"train": "train", "validation": "train", "test": "test"}


def files(config) -> dict[str, list[str]]:
    plan = _plan(config)
    found: dict[str, list[str]] = {"train": [], "test": []}
    for split, items in plan["files"].items():
        found[ORIGIN[split]].extend(path for _, path, _ in items)
    if any(plan["silence"].values()):
        found["train"].extend(plan["noise"])
    return {origin: sorted(paths) for origin, paths in found.items() if paths}


def describe(config) -> dict:
    plan = _plan(config)
    return {"feature": "audio", "class_names": plan["names"], "sample_rate": config.sample_rate,
            "clip_samples": clip_samples(config), "shape": [clip_samples(config)]}


def read_units(config, origin: str) -> list:
    plan = _plan(config)
    units = []
    for split, items in sorted(plan["files"].items()):
        if ORIGIN[split] != origin:
            continue
        for start in range(0, len(items), CHUNK_FILES):
            units.append(("clips", split, items[start:start + CHUNK_FILES]))
    if origin == "train":  # silence clips of every split come from the noise files
        for index, path in enumerate(plan["noise"]):
            wanted = {split: [number for number in range(count)
                              if number % len(plan["noise"]) == index]
                      for split, count in plan["silence"].items()}
            if any(wanted.values()):
                units.append(("noise", path, wanted))
    return units


def read_unit(unit, config, info):
    yield unit


def load(path: str, rate: int, limit: int) -> np.ndarray:
    """Mono float32 samples of a WAV file at `rate` (WavError on a bad file)."""
    size = file_state(path)[0]
    if size > limit:
        raise wav.WavError("too_large", f"{size:,} bytes, more than the {limit:,} a file of "
                           "this kind may hold")
    samples, source_rate = wav.decode(read_bytes(path))
    return wav.resample(samples, source_rate, rate)


def expand(chunk, info):
    kind = chunk[0]
    if kind == "clips":
        yield from _clips(chunk[1], chunk[2], info)
    else:
        yield from _silence(chunk[1], chunk[2], info)


def _clips(split: str, items, info):
    origin, length = ORIGIN[split], info["clip_samples"]
    for word, path, label in items:
        record_id = f"{word}/{pathlib.PurePosixPath(path).name}"
        if label is None:
            yield rejection(record_id, path, origin, "unknown_label",
                            f"word folder {word!r} is not one of {info['class_names']}")
            continue
        try:
            samples = load(path, info["sample_rate"], MAX_CLIP_FILE_BYTES)
        except (wav.WavError, OSError) as error:
            yield rejection(record_id, path, origin, getattr(error, "reason", "unreadable"),
                            f"{path}: {error}")
            continue
        if samples.size == 0:
            yield rejection(record_id, path, origin, "empty_audio",
                            f"{path}: the file holds no samples")
            continue
        if not np.isfinite(samples).all():
            yield rejection(record_id, path, origin, "non_finite_value",
                            f"{path}: NaN or infinite samples")
            continue
        if float(np.abs(samples).max()) < SILENT_PEAK:
            yield rejection(record_id, path, origin, "all_silent",
                            f"{path}: every sample is (nearly) zero: nothing was recorded")
            continue
        yield {"id": record_id, "source": path, "origin": origin, "split": split,
               "label": label, "audio": wav.fit(samples, length)}


def _silence(path: str, wanted: dict, info):
    """Silence clips cut from one noise recording at places and levels fixed by their ids."""
    length, label = info["clip_samples"], info["class_names"].index(SILENCE)
    try:
        noise = load(path, info["sample_rate"], MAX_NOISE_FILE_BYTES)
        if noise.size < length:
            raise wav.WavError("too_short", f"{noise.size} samples, shorter than one clip "
                               f"({length}); background noise must be longer")
    except (wav.WavError, OSError) as error:
        for split, numbers in wanted.items():
            for number in numbers:
                yield rejection(f"{SILENCE}/{split}/{number}", path, ORIGIN[split],
                                getattr(error, "reason", "unreadable"), f"{path}: {error}")
        return
    for split, numbers in wanted.items():
        for number in numbers:
            record_id = f"{SILENCE}/{split}/{number}"
            rng = np.random.default_rng(int(validation_bucket(record_id) * 2**32))
            start = int(rng.integers(0, noise.size - length + 1))
            level = float(rng.uniform(0.0, 1.0))  # Speech Commands' background volume range
            yield {"id": record_id, "source": f"{path}@{start}", "origin": ORIGIN[split],
                   "split": split, "label": label,
                   "audio": np.clip(noise[start:start + length] * level, -1.0, 1.0)}
