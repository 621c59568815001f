"""Write data/bike_sharing/bike_sharing.csv from the copy of the UCI Bike Sharing data set
(hourly, 2011) that ISLP 0.6.0 ships as ISLP/data/Bikeshare.csv: one row per hour, an id, 12
numeric features and the number of bikes rented in that hour (`bikers`), with a header.

ISLP's own dependencies (torch among them) are not needed: the script reads the CSV file
straight out of the wheel, or out of an installed ISLP without importing it.

    .venv/bin/pip download --no-deps --dest /tmp/islp islp==0.6.0
    .venv/bin/python data/bike_sharing/make_bike_sharing.py /tmp/islp/islp-0.6.0-py3-none-any.whl

The pipeline reads the committed CSV and never needs ISLP.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import importlib.util
import io
import pathlib
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
MEMBER = "ISLP/data/Bikeshare.csv"
# The file as ISLP 0.6.0 ships it: another version may hold other rows.
SOURCE_SHA256 = "ac6950ae6f11efcc69c29d6bb13e8881c001e27d36434660d59444a1414f712c"
YEAR = 2011  # ISLP keeps the first of the UCI data set's two years: `day` is its day of year

# Categorical columns in ISLP's spelling -> their codes in the UCI original (hour.csv).
MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov",
          "Dec"]
WEATHER = ["clear", "cloudy/misty", "light rain/snow", "heavy rain/snow"]
FEATURES = ["season", "mnth", "day", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]
TARGET = "bikers"  # = casual + registered, which are left out: they add up to the target


def source_bytes(path: str | None) -> bytes:
    """Bikeshare.csv from a wheel, a CSV file, or (no path) an installed ISLP package."""
    if path is None:
        spec = importlib.util.find_spec("ISLP")  # finds the package without running it
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("ISLP is not installed: pass the wheel from `pip download "
                             "--no-deps islp==0.6.0`, or `pip install --no-deps islp==0.6.0`.")
        path = str(pathlib.Path(spec.submodule_search_locations[0]) / "data/Bikeshare.csv")
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as wheel:
            content = wheel.read(MEMBER)
    else:
        content = pathlib.Path(path).read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{path}: Bikeshare.csv has sha256 {digest}, expected ISLP 0.6.0's "
                         f"{SOURCE_SHA256}; use islp==0.6.0.")
    return content


def row_of(record: dict) -> list[str]:
    """One output row: numbers as the source writes them, categories as their UCI codes."""
    day = int(record["day"])
    hour = int(record["hr"])
    when = datetime.date(YEAR, 1, 1) + datetime.timedelta(days=day - 1)
    codes = {"mnth": str(MONTHS.index(record["mnth"]) + 1),
             "weathersit": str(WEATHER.index(record["weathersit"]) + 1),
             "hr": str(hour)}
    if int(codes["mnth"]) != when.month:
        raise ValueError(f"day {day} is in month {when.month}, the row says {record['mnth']}")
    return [f"{when.isoformat()}T{hour:02d}",
            *[codes.get(name, record[name]) for name in FEATURES], record[TARGET]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?",
                        help="islp-0.6.0 wheel or its Bikeshare.csv (default: installed ISLP)")
    args = parser.parse_args(argv)
    records = list(csv.DictReader(io.StringIO(source_bytes(args.source).decode("utf-8"))))
    output = HERE / "bike_sharing.csv"
    with open(output, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["id", *FEATURES, TARGET])
        writer.writerows(row_of(record) for record in records)
    print(f"wrote {len(records)} rows to {output}")


if __name__ == "__main__":
    main()
