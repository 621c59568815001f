"""The centroid detector's read-out and matching rule (task detection with `[train] model =
"fomo"`, edgepipe.contracts.tasks.CENTROIDS), shared by evaluate, quantize, the report and
the server: numpy only.

Read-out: cells whose most probable class is an object with probability >= threshold;
neighbouring cells of one class are merged into one centroid (their probability-weighted
mean). A predicted centroid matches the unmatched true box of its class whose centre is
nearest, if within one cell (the grid's resolution: the model cannot place a centre finer).
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5


def centroids(heatmap: np.ndarray, threshold: float = THRESHOLD) -> list[tuple]:
    """[(y, x, class, score)] of one image's heatmap [rows, columns, 1 + classes], y and x as
    fractions of the image."""
    rows, columns = heatmap.shape[:2]
    best = heatmap[..., 1:].argmax(-1)
    score = heatmap[..., 1:].max(-1)
    wanted = (score >= threshold) & (heatmap.argmax(-1) > 0)
    seen = np.zeros_like(wanted)
    found = []
    for row, column in zip(*np.nonzero(wanted)):
        if seen[row, column]:
            continue
        label, stack, cells = best[row, column], [(row, column)], []
        seen[row, column] = True
        while stack:  # the connected cells of this class (4-neighbours)
            r, c = stack.pop()
            cells.append((r, c))
            for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if (0 <= nr < rows and 0 <= nc < columns and wanted[nr, nc]
                        and not seen[nr, nc] and best[nr, nc] == label):
                    seen[nr, nc] = True
                    stack.append((nr, nc))
        weights = np.array([score[r, c] for r, c in cells])
        y = float(np.average([(r + 0.5) / rows for r, _ in cells], weights=weights))
        x = float(np.average([(c + 0.5) / columns for _, c in cells], weights=weights))
        found.append((y, x, int(label), float(weights.max())))
    return found


def match(truth: dict, found: list[tuple], rows: int, columns: int) -> int:
    """How many predicted centroids hit an unmatched true box of their class within a cell."""
    return int(matched(truth, found, rows, columns)[1].sum())


def matched(truth: dict, found: list[tuple], rows: int, columns: int):
    """(matched flag per true box, matched flag per centroid of `found`), centroids taken
    from the most confident."""
    centres = np.stack([(truth["bbox"][:, 0] + truth["bbox"][:, 2]) / 2,
                        (truth["bbox"][:, 1] + truth["bbox"][:, 3]) / 2], 1) if len(
        truth["label"]) else np.zeros((0, 2))
    used = np.zeros(len(truth["label"]), bool)
    hits = np.zeros(len(found), bool)
    for index in sorted(range(len(found)), key=lambda item: -found[item][3]):
        y, x, label, _ = found[index]
        distance = np.hypot((centres[:, 0] - y) * rows, (centres[:, 1] - x) * columns)
        distance = np.where((np.asarray(truth["label"]) == label) & ~used, distance, np.inf)
        if len(distance) and distance.min() <= 1.0:
            used[distance.argmin()] = True
            hits[index] = True
    return used, hits


def scores(truths: list[dict], heatmaps: np.ndarray, threshold: float = THRESHOLD,
           class_names: list[str] | None = None) -> dict:
    """Centroid precision, recall and F1 over a split (and per class, given its names)."""
    rows, columns, depth = heatmaps.shape[1:4]
    hits, predicted, actual = (np.zeros(depth - 1, np.int64) for _ in range(3))
    for truth, heatmap in zip(truths, heatmaps):
        found = centroids(heatmap, threshold)
        for (_, _, label, _), hit in zip(found, matched(truth, found, rows, columns)[1]):
            predicted[label] += 1
            hits[label] += int(hit)
        np.add.at(actual, np.asarray(truth["label"], np.int64), 1)
    result = {f"centroid_{key}": value for key, value in
              _rates(hits.sum(), predicted.sum(), actual.sum()).items()}
    result.update(true_objects=int(actual.sum()), predicted_centroids=int(predicted.sum()))
    if class_names is not None:
        result["per_class"] = {name: {**_rates(hits[index], predicted[index], actual[index]),
                                      "true_objects": int(actual[index]),
                                      "predicted_centroids": int(predicted[index])}
                               for index, name in enumerate(class_names)}
    return result


def _rates(hits: int, predicted: int, actual: int) -> dict[str, float]:
    precision = float(hits / predicted) if predicted else 0.0
    recall = float(hits / actual) if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def in_pixels(found: list[tuple], where) -> list[tuple[float, float]]:
    """(x, y) pixels of the image sent of centroids (y, x fractions of the letterboxed model
    input), through a contracts.letterbox.Transform."""
    if not found:
        return []
    points = np.array([[y, x, y, x] for y, x, _, _ in found], np.float64)
    corners = where.to_original(points)
    return [(float(x), float(y)) for x, y in corners[:, :2]]
