"""Forecasting through the real stages: series in, windows cut in Beam, a global model that
scales each window inside, forecasts in the series' own units out.

The series (tests/forecast_fixtures.py) are generated with a known shape and one series per
bad case, so the tests can say which series must be repaired, padded or quarantined."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.components.shared import examples_io
from edgepipe.contracts import forecast_windows

from tests.forecast_fixtures import GOOD, HORIZON, LENGTH, LOOKBACK, SHORT, ingest_config


def test_bad_series_are_repaired_or_quarantined_by_name(forecast_examples):
    properties, examples = forecast_examples
    assert properties["quarantined"]["series"] == {"tiny": "too_short"}
    repaired = properties["repaired"]
    assert repaired["gappy"] == {"gap": 1}
    assert repaired["dupes"] == {"duplicate_timestamp": 1}
    assert repaired["backwards"] == {"time_goes_backwards": 1}
    assert repaired["words"] == {"non_numeric_value": 1}
    assert properties["series"] == {"read": GOOD + 6, "kept": GOOD + 5, "quarantined": 1,
                                    "repaired": 4}
    series = forecast_windows.read_series(examples.path)
    # the later of two rows of a timestamp is kept; the gap is interpolated
    assert series["dupes"]["values"][29] == 999.0
    gappy = series["gappy"]["values"]
    assert gappy[20] == pytest.approx((gappy[19] + gappy[21]) / 2)
    assert series["gappy"]["frequency"] == "MS"
    assert len(series["short"]["values"]) == SHORT


def test_with_fill_none_each_bad_series_is_quarantined_with_its_problem(run_stage,
                                                                        forecast_csv):
    properties, _ = run_stage("ingest", {}, ingest_config(forecast_csv, fill="none"))
    assert properties["quarantined"]["series"] == {
        "gappy": "gap", "dupes": "duplicate_timestamp", "backwards": "time_goes_backwards",
        "words": "non_numeric_value", "tiny": "too_short"}
    assert properties["repaired"] == {}


def test_splits_are_by_time_and_a_short_series_gets_padded_windows(forecast_examples):
    properties, examples = forecast_examples
    kept = GOOD + 5
    assert properties["splits"]["test"] == kept and properties["splits"]["validation"] == kept
    train_per_series = (LENGTH - 3 * HORIZON) * (kept - 1) + (SHORT - 3 * HORIZON)
    assert properties["splits"]["train"] == train_per_series
    test = examples_io.load_numpy(examples.path, "test")
    ids = [forecast_windows.series_of(value) for value in test["id"]]
    series = forecast_windows.read_series(examples.path)
    row = ids.index("s1")
    # the test target is the series' last horizon values, its input the lookback before
    assert np.allclose(test["target"][row], series["s1"]["values"][-HORIZON:], rtol=1e-5)
    window = np.asarray(test["sequence"][row])
    assert window.shape == (LOOKBACK, 2)   # value + mask, the full lookback
    assert np.allclose(window[:, 0], series["s1"]["values"][-HORIZON - LOOKBACK:-HORIZON])
    short = np.asarray(test["sequence"][ids.index("short")])
    assert short.shape == (SHORT - HORIZON, 2) and (short[:, 1] == 1).all()
