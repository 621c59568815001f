"""The rows of a forecasting source, keyed by series: long or wide CSV files.

Long format (`format = "long"`, the default): one row per (series, timestamp), with
`series_column`, `time_column`, `target_column` and optional `covariate_columns`. Wide format
(`format = "wide"`): one row per timestamp, `time_column` and one column per series (the
column name is the series name); `covariate_columns` there are past covariates shared by every
series (a holiday flag, a temperature), read into each series' rows, not series themselves. Each row becomes (series, (location, time text, [value text,
covariate texts...])); a row that cannot be read (wrong number of fields, no series name) is
a rejection of its own, quarantined with its line. Reads one file at a time, as the csv source does.
"""

from __future__ import annotations

import csv as csv_module
import io

from edgepipe.components.ingest.sources.common import read_bytes


def header(path: str, encoding: str) -> list[str]:
    text = read_bytes(path).decode("utf-8-sig" if encoding.lower() in ("utf-8", "utf8")
                                   else encoding)
    first = next(csv_module.reader(io.StringIO(text)), None)
    if not first:
        raise ValueError(f"{path}: the CSV file is empty; it needs a header row.")
    return [name.strip() for name in first]


def columns(config, path: str) -> dict:
    """The column names the config asks for, checked against the file's header."""
    names = header(path, config.encoding)
    target = config.target_columns[0] if config.target_columns else "value"
    if config.format == "wide":  # the covariate columns are shared by every series
        needed = [config.time_column, *config.covariate_columns]
        series = [name for name in names
                  if name != config.time_column and name not in config.covariate_columns]
        if not series:
            raise ValueError(f"{path}: format = \"wide\" needs one column per series beside "
                             f"the time column {config.time_column!r} and the covariate "
                             f"columns {list(config.covariate_columns)}; the header is "
                             f"{names}.")
    else:
        needed = [config.series_column, config.time_column, target,
                  *config.covariate_columns]
        series = []
    absent = [name for name in needed if name not in names]
    if absent:
        raise ValueError(f"{path}: no column(s) {absent}; the header has {names}. Set [ingest] "
                         "series_column / time_column / target_column / covariate_columns "
                         "(defaults series_id, timestamp, value).")
    return {"header": names, "target": target, "series": series}


def read_rows(path: str, config, layout: dict):
    """Tagged elements: ("row", (series, (location, time, [texts]))) or ("rejected", JSON
    quarantine fields) for every data row of the file."""
    text = read_bytes(path).decode("utf-8-sig" if config.encoding.lower() in ("utf-8", "utf8")
                                   else config.encoding)
    reader = csv_module.reader(io.StringIO(text))
    names = layout["header"]
    next(reader, None)
    index = {name: names.index(name) for name in names}
    wanted = [layout["target"], *config.covariate_columns]
    for fields in reader:
        if not fields:
            continue
        location = f"{path}:{reader.line_num}"
        if len(fields) != len(names):
            yield "rejected", {"source": location, "id": location, "split": "all",
                               "level": "row", "reason": "wrong_column_count",
                               "detail": f"{len(fields)} fields, the header has {len(names)}"}
            continue
        time = fields[index[config.time_column]]
        if config.format == "wide":
            shared = [fields[index[name]] for name in config.covariate_columns]
            for name in layout["series"]:
                yield "row", (name, (location, time, [fields[index[name]], *shared]))
            continue
        series = fields[index[config.series_column]].strip()
        if not series:
            yield "rejected", {"source": location, "id": location, "split": "all",
                               "level": "row", "reason": "missing_series",
                               "detail": f"column {config.series_column!r} is empty"}
            continue
        yield "row", (series, (location, time, [fields[index[name]] for name in wanted]))
