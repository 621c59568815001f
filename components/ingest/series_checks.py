"""One series of a forecasting source: check its rows, repair or quarantine it.

A series arrives as its rows in file order: (location "path:line", time text, [value text,
covariate texts...]). Problems are found and named: timestamps going backwards, duplicate
timestamps, gaps in the regular grid of its frequency, values that are not finite numbers.
With `fill = "none"` any of them quarantines the series (reason: the first problem; detail:
all of them, with their lines); with "previous" or "interpolate" the series is repaired
(sorted, the last of duplicate rows kept, missing steps filled) and every repair is reported.
A timestamp that cannot be read, or that is off the frequency's grid, always quarantines the
series: there is no right place to put its value. Pure Python and numpy (pandas for dates).
"""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np

from edgepipe.contracts import forecast_windows

# A grid far longer than the rows (a year typed 9999 in hourly data) is refused, not built:
# memory follows the rows that exist.
MAX_GRID_GROWTH = 10


class Quarantined(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _number(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def parse_times(rows: list, frequency: str | None) -> tuple[list, str]:
    """(timestamps: floats or pandas Timestamps, kind "number" or "date")."""
    texts = [row[1].strip() for row in rows]
    numbers = [_number(text) for text in texts]
    if all(not math.isnan(value) for value in numbers) and not (
            frequency and not _numeric_frequency(frequency)):
        return numbers, "number"
    import pandas as pd

    times = []
    for (location, _, _), text in zip(rows, texts):
        try:
            stamp = pd.Timestamp(text)
        except (ValueError, TypeError):
            stamp = pd.NaT
        if stamp is pd.NaT:
            raise Quarantined("unparseable_time", f"{location}: timestamp {text[:40]!r} is "
                              "neither a number nor a date (ISO 8601, e.g. 2020-01-31)")
        times.append(stamp.tz_localize(None) if stamp.tzinfo else stamp)
    return times, "date"


def _numeric_frequency(frequency: str) -> bool:
    return not math.isnan(_number(frequency))


def infer_frequency(times: list, kind: str, given: str | None) -> str:
    """The given frequency, else the series' own: the most common step between sorted
    timestamps (numbers), or pandas' inference, else a calendar step near the most common."""
    if given:
        return given
    ordered = sorted(set(times))
    if len(ordered) < 2:
        raise Quarantined("too_short", "fewer than two timestamps: no frequency to infer")
    steps = collections.Counter(b - a for a, b in zip(ordered, ordered[1:]))
    step = steps.most_common(1)[0][0]
    if kind == "number":
        return f"{step:g}"
    import pandas as pd

    inferred = pd.infer_freq(pd.DatetimeIndex(ordered)) if len(ordered) >= 3 else None
    if inferred:
        return inferred
    days = step / pd.Timedelta(days=1)
    month_start = all(stamp.day == 1 for stamp in ordered)
    for low, high, alias in ((28, 31, "M"), (89, 92, "Q"), (365, 366, "Y")):
        if low <= days <= high:
            return alias + ("S" if month_start else "E")
    return pd.tseries.frequencies.to_offset(step).freqstr


def grid_positions(times: list, kind: str, frequency: str) -> tuple[list, list[str]]:
    """(index of each timestamp on the regular grid from the first one, the grid's labels)."""
    first, last = min(times), max(times)
    if kind == "number":
        step = _number(frequency)
        if not step > 0:
            raise Quarantined("bad_frequency", f"frequency {frequency!r} is not a positive step")
        positions = [(time - first) / step for time in times]
        if any(abs(p - round(p)) > 1e-6 for p in positions):
            raise Quarantined("off_grid", f"timestamps are not whole steps of {frequency} "
                              f"from {first:g}")
        size = int(round((last - first) / step)) + 1
        _check_grid(size, len(times))
        return [int(round(p)) for p in positions], [f"{first + i * step:g}" for i in range(size)]
    import pandas as pd

    try:
        offset = pd.tseries.frequencies.to_offset(frequency)
    except ValueError:
        raise Quarantined("bad_frequency", f"frequency {frequency!r} is not a pandas frequency "
                          "(e.g. \"D\", \"MS\", \"QS\", \"YS\", \"h\")") from None
    estimate = (last - first) / (pd.Timestamp(first) + offset - pd.Timestamp(first))
    _check_grid(int(estimate) + 1, len(times))
    grid = pd.date_range(first, last, freq=offset)
    index = grid.get_indexer(pd.DatetimeIndex(times))
    if (index < 0).any():
        stray = times[int(np.argmax(index < 0))]
        raise Quarantined("off_grid", f"timestamp {stray} is not on the {frequency} grid "
                          f"starting {first}")
    return index.tolist(), [stamp.isoformat() for stamp in grid]


def _check_grid(size: int, rows: int) -> None:
    if size > MAX_GRID_GROWTH * rows + 1000:
        raise Quarantined("gap", f"the timestamps span {size:,} steps but the series has "
                          f"{rows:,} rows: a timestamp is far off (a typo in a year?)")


def check_series(name: str, rows: list, config, columns: int) -> dict[str, Any]:
    """{"values" [n, columns] float64, "timestamps", "frequency", "repairs": [(problem,
    detail)]} of a kept series; Quarantined(reason, detail) otherwise."""
    times, kind = parse_times(rows, config.frequency)
    problems: list[tuple[str, str]] = []
    for number in range(1, len(times)):
        if times[number] < times[number - 1]:
            problems.append(("time_goes_backwards", f"{rows[number][0]}: {rows[number][1]} "
                             f"comes after {rows[number - 1][1]}"))
            break
    order = sorted(range(len(rows)), key=lambda index: (times[index], index))  # stable
    latest: dict = {}
    for index in order:  # the last row of a timestamp in file order wins
        if times[index] in latest:
            problems.append(("duplicate_timestamp", f"{rows[index][0]}: {rows[index][1]} also "
                             f"at {rows[latest[times[index]]][0]}"))
        latest[times[index]] = index
    kept = sorted(latest.values(), key=lambda index: times[index])
    frequency = infer_frequency([times[i] for i in kept], kind, config.frequency)
    positions, labels = grid_positions([times[i] for i in kept], kind, frequency)
    values = np.full((len(labels), columns), np.nan)
    for index, position in zip(kept, positions):
        values[position] = [_number(text) for text in rows[index][2]]
        for column, text in enumerate(rows[index][2]):
            if math.isnan(values[position, column]):
                problems.append(("non_numeric_value", f"{rows[index][0]}: column {column} "
                                 f"holds {text.strip()[:40]!r}, not a finite number"))
    missing = sorted(set(range(len(labels))) - set(positions))
    if missing:
        shown = ", ".join(labels[i] for i in missing[:5])
        problems.append(("gap", f"{len(missing)} step(s) of frequency {frequency} missing: "
                         f"{shown}{', ...' if len(missing) > 5 else ''}"))
    if problems and config.fill == "none":
        raise Quarantined(problems[0][0], f"series {name!r}: " + "; ".join(
            detail for _, detail in problems[:10]) + (" ..." if len(problems) > 10 else "")
            + ". Fix the rows, or set [ingest] fill = \"previous\" or \"interpolate\".")
    values = fill(values, config.fill)
    if len(values) < config.forecast.required_history:
        raise Quarantined("too_short", f"series {name!r} has {len(values)} points, fewer than "
                          f"min_history {config.forecast.required_history} (at least "
                          "(backtest_windows + 2) x horizon + 1: a train, a validation and "
                          "each backtest origin's test window)")
    return {"values": values, "timestamps": labels, "frequency": frequency,
            "repairs": problems}


def fill(values: np.ndarray, how: str) -> np.ndarray:
    """Missing steps (NaN) filled per column (forecast_windows.fill_missing, which
    `edgepipe forecast` applies too); a column without any number quarantines the series."""
    try:
        return forecast_windows.fill_missing(values, how)
    except ValueError as error:
        raise Quarantined("non_numeric_value", str(error)) from None
