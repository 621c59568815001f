"""Write data/fertility/fertility.csv (long format: series_id, timestamp, value) from the
World Bank fertility rates that statsmodels bundles (statsmodels.datasets.fertility): total
births per woman, one yearly series per country or region, 1960-2014.

Each series keeps its observations from its first to its last recorded year: years before a
country's first or after its last record are not written (nothing to forecast from or
score against there), a year missing inside a series is written with an empty value, which
ingest reports and repairs (`fill`) or quarantines by series name. Deterministic; run with
`.venv/bin/python data/fertility/make_series.py`.
"""

from __future__ import annotations

import csv
import math
import pathlib


def main() -> None:
    from statsmodels.datasets import fertility

    table = fertility.load_pandas().data
    years = [column for column in table.columns if column.isdigit()]
    years = [year for year in years if table[year].notna().any()]  # 2015 is empty throughout
    path = pathlib.Path(__file__).with_name("fertility.csv")
    rows = 0
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["series_id", "timestamp", "value"])
        for _, record in table.iterrows():
            values = [record[year] for year in years]
            known = [index for index, value in enumerate(values) if not math.isnan(value)]
            if not known:
                continue
            for index in range(known[0], known[-1] + 1):
                value = values[index]
                writer.writerow([record["Country Code"], years[index],
                                 "" if math.isnan(value) else f"{value:.3f}"])
                rows += 1
    print(f"wrote {path}: {rows} rows, years {years[0]}-{years[-1]}")


if __name__ == "__main__":
    main()
