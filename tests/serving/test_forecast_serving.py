"""A pushed forecasting model served over TF Serving's REST API and through `edgepipe
forecast`: clients send a series' last raw values, the answers are forecasts in the series'
units, equal to what LiteRT computes from the pushed .tflite."""

from __future__ import annotations

import csv

import numpy as np

from edgepipe.contracts import artifacts, litert, model_inputs
from tests.forecast_fixtures import HORIZON, LOOKBACK, month
from tests.serving.conftest import call, serve


def test_server_and_cli_forecasts_equal_litert(tmp_path, capsys, run_stage, forecast_examples,
                                               forecast_model, forecast_evaluation,
                                               forecast_tflite, forecast_csv):
    from ai_edge_litert.interpreter import Interpreter

    from edgepipe import cli

    registry = tmp_path / "registry"
    inputs = {"examples": forecast_examples[1], "model": forecast_model[1],
              "evaluation": forecast_evaluation[1], "tflite": forecast_tflite[1]}
    pushed, _ = run_stage("push", inputs, {"registry": {"path": str(registry),
                                                        "model_name": "sales"}})
    version = registry / "sales" / "1"
    assert pushed["pushed"]
    model_json = artifacts.read_model_info(version)
    # two series as a client sends them: [value, promo] steps, one shorter than the lookback
    rng = np.random.default_rng(0)
    long = np.stack([200 + 20 * rng.standard_normal(LOOKBACK + 5), np.arange(LOOKBACK + 5) % 2],
                    axis=1)
    short = np.array([[40.0, 1.0], [44.0, 0.0], [47.0, 1.0], [43.0, 0.0]])
    interpreter = Interpreter(model_content=(version / "model.tflite").read_bytes())
    interpreter.allocate_tensors()
    expected = litert.invoke_each(interpreter, model_inputs.prepare(model_json, [long, short]))
    with serve(registry) as (base, _):
        status, body = call(base, "POST", "/v1/models/sales:predict",
                            {"instances": [long.tolist(), short.tolist()]})
        assert status == 200, body
        assert body["horizon"] == [f"t+{step}" for step in range(1, HORIZON + 1)]
        np.testing.assert_allclose(np.array(body["predictions"]), expected, rtol=1e-6)
        forecasts = np.array(body["predictions"])
        assert 120 < forecasts[0].mean() < 300 and 20 < forecasts[1].mean() < 80  # their units
        status, body = call(base, "POST", "/v1/models/sales:predict",
                            {"instances": [[[1.0, 2.0, 3.0]]]})  # three channels: wrong
        assert status == 400 and "[steps, 2]" in body["error"]
    # the CLI: the same two series as a long-format CSV
    series_csv, output = tmp_path / "recent.csv", tmp_path / "forecasts.csv"
    with open(series_csv, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["series_id", "timestamp", "value", "promo"])
        for name, rows in (("long", long), ("short", short)):
            for index in reversed(range(len(rows))):  # out of order: the CLI sorts by time
                writer.writerow([name, month(index), repr(float(rows[index, 0])),
                                 int(rows[index, 1])])
    def config(fill):
        path = tmp_path / f"forecast-{fill}.toml"
        path.write_text(f"""
[pipeline]
name = "sales"
task = "forecasting"
[ingest]
source = "csv"
train = "{forecast_csv}"
covariate_columns = ["promo"]
fill = "{fill}"
[forecast]
horizon = {HORIZON}
lookback = {LOOKBACK}
[registry]
path = "{registry}"
""")
        return str(path)

    assert cli.main(["forecast", config("none"), "--csv", str(series_csv), "-o",
                     str(output)]) == 0
    np.testing.assert_allclose(written(output), expected, rtol=1e-6)
    assert [row["series"] for row in read(output)] == ["long"] * HORIZON + ["short"] * HORIZON
    # empty values: repaired by the config's [ingest] fill and said on stderr, or refused
    lines = series_csv.read_text().splitlines()
    holes = [2, 5]  # file lines 3 and 6: "long" at months LOOKBACK + 3 and LOOKBACK
    for index in holes:
        fields = lines[index].split(",")
        fields[2] = ""
        lines[index] = ",".join(fields)
    holey = tmp_path / "holey.csv"
    holey.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert cli.main(["forecast", config("none"), "--csv", str(holey), "-o", str(output)]) == 2
    refused = capsys.readouterr().err
    assert f"{holey}:3" in refused and "'value'" in refused and 'fill = "previous"' in refused
    assert cli.main(["forecast", config("interpolate"), "--csv", str(holey), "-o",
                     str(output)]) == 0
    said = capsys.readouterr().err
    assert "2 empty or non-numeric value(s) in 1 series" in said and "3, 6" in said
    repaired = long.copy()
    for month_index in (LOOKBACK + 3, LOOKBACK):  # the rows were written newest first
        repaired[month_index, 0] = (long[month_index - 1, 0] + long[month_index + 1, 0]) / 2
    assert not np.allclose(repaired, long)
    interpolated = litert.invoke_each(interpreter, model_inputs.prepare(model_json,
                                                                        [repaired, short]))
    np.testing.assert_allclose(written(output), interpolated, rtol=1e-6)
    assert cli.main(["forecast", config("previous"), "--csv", str(holey), "-o",
                     str(output)]) == 0
    assert "with the previous value" in capsys.readouterr().err


def read(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def written(path) -> np.ndarray:
    rows = read(path)
    return np.array([float(row["forecast"]) for row in rows]).reshape(-1, HORIZON)
