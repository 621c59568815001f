"""The report's audio pieces: a spectrogram per class, the clips themselves as players
embedded in the page (WAV data: URIs, no network), the confused pairs with one clip of each,
and the streaming figures of the evaluation (misses and false accepts per hour)."""

from __future__ import annotations

import base64
import csv
import pathlib
from typing import Any

import numpy as np

from edgepipe.components.report import plots
from edgepipe.contracts import artifacts, wav
from edgepipe.models import audio_math


def sound_uri(samples: np.ndarray, sample_rate: int) -> str:
    return "data:audio/wav;base64," + base64.b64encode(wav.encode(samples, sample_rate)).decode()


def spectrogram_grid(clips: list[np.ndarray], titles: list[str], sample_rate: int,
                     wrong: list[bool] | None = None) -> str:
    """Log-mel spectrograms (time across, mel bins up), one panel per clip."""
    count = len(clips)
    columns = min(6, max(1, count))
    rows = max(1, -(-count // columns))
    figure, grid = plots.grid_figure(2.0 * columns, 1.9 * rows, rows, columns, above=0.3)
    for index, axes in enumerate(grid.flat):
        if index >= count:
            axes.set_axis_off()
            continue
        image = audio_math.log_mel(np.asarray(clips[index], np.float32), sample_rate)
        axes.imshow(image.T, origin="lower", aspect="auto", cmap="magma",
                    vmin=float(np.percentile(image, 5)), vmax=float(image.max()))
        is_wrong = bool(wrong[index]) if wrong else False
        axes.set_title(titles[index], fontsize=7.5,
                       color=plots.WRONG_COLOR if is_wrong else "#333333")
        axes.set_xticks([])
        axes.set_yticks([])
    return plots._to_base64_png(figure)


def data_section(train: dict, chosen: list[int], names: list[str], sample_rate: int,
                 statistics: dict) -> dict[str, Any]:
    """The data section's audio figures: one spectrogram and one player per class (the
    first training clip of each), and the per-class level/clipping/duration table."""
    first: dict[str, int] = {}
    for index, name in zip(chosen, names):
        first.setdefault(name, index)
    per_class = statistics.get("per_class", {})
    return {
        "spectrogram_figure": spectrogram_grid([train["audio"][index] for index in first.values()],
                                               list(first), sample_rate),
        "example_sounds": [{"label": name, "id": str(train["id"][index]),
                            "uri": sound_uri(train["audio"][index], sample_rate)}
                           for name, index in first.items()],
        "audio_statistics": [{"name": name, **{key: values.get(key) for key in (
            "count", "median_level_dbfs", "clipped_share", "median_active_seconds")}}
            for name, values in per_class.items()],
        "sample_rate": sample_rate,
    }


def confused_sounds(pairs: list[dict], evaluation_dir, class_names: list[str], test: dict,
                    sample_rate: int) -> list[dict]:
    """Each confused pair with the first test clip of that confusion, as a player."""
    with open(pathlib.Path(evaluation_dir) / artifacts.PREDICTIONS, newline="",
              encoding="utf-8") as stream:
        predictions = list(csv.DictReader(stream))
    position = {str(record_id): index for index, record_id in enumerate(test["id"])}
    result = []
    for pair in pairs:
        match = next((row for row in predictions
                      if class_names[int(row["label"])] == pair["true"]
                      and class_names[int(row["prediction"])] == pair["predicted"]), None)
        sound = None
        if match is not None and match["id"] in position:
            sound = {"id": match["id"],
                     "uri": sound_uri(test["audio"][position[match["id"]]], sample_rate)}
        result.append({**pair, "sound": sound})
    return result


def streaming(evaluation_dir) -> dict | None:
    """The evaluation's streaming figures (components/evaluate/streaming.py), if any."""
    return artifacts.read_streaming(evaluation_dir)
