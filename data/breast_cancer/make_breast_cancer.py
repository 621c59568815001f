"""Write data/breast_cancer/breast_cancer.csv from scikit-learn's bundled copy of the Breast
Cancer Wisconsin (Diagnostic) data set: one row per tumour, an id, the diagnosis and the 30
numeric features, with a header. Needs scikit-learn (`pip install -e '.[bench]'`); the
pipeline reads the committed CSV and never needs it.

    .venv/bin/python data/breast_cancer/make_breast_cancer.py
"""

from __future__ import annotations

import csv
import pathlib

HERE = pathlib.Path(__file__).resolve().parent


def column(name: str) -> str:
    """'mean concave points' -> 'mean_concave_points'."""
    return name.replace(" ", "_")


def main() -> None:
    from sklearn import datasets

    data = datasets.load_breast_cancer()
    header = ["id", "diagnosis", *[column(name) for name in data.feature_names]]
    with open(HERE / "breast_cancer.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        for index, (row, target) in enumerate(zip(data.data, data.target)):
            writer.writerow([f"wdbc-{index:03d}", data.target_names[target],
                             *[repr(float(value)) for value in row]])
    print(f"wrote {len(data.target)} rows to {HERE / 'breast_cancer.csv'}")


if __name__ == "__main__":
    main()
