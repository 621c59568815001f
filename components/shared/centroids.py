"""The centroid detector's (models/fomo.py) labels, loss and read-out: one class per cell of
its coarse grid, and centroid precision / recall / F1 (task detection, `[train] model =
"fomo"`).

A cell is labelled with the class of the true box whose centre falls in it (1 + class; 0
background). The loss is cross-entropy weighted OBJECT_WEIGHT times on object cells (Edge
Impulse's FOMO weights them alike: they are a few cells among hundreds). Read-out: cells whose
most probable class is an object with probability >= threshold; neighbouring cells of one
class are merged into one centroid (their probability-weighted mean). A predicted centroid
matches the unmatched true box of its class whose centre is nearest, if within one cell.
"""

from __future__ import annotations

import numpy as np

OBJECT_WEIGHT = 10.0
THRESHOLD = 0.5


def cell_labels(tf, boxes, labels, rows: int, columns: int):
    """int32 [rows, columns] cell classes of one image's boxes (ymin, xmin, ymax, xmax)."""
    centres = tf.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    cells = tf.stack([tf.clip_by_value(tf.cast(centres[:, 0] * rows, tf.int32), 0, rows - 1),
                      tf.clip_by_value(tf.cast(centres[:, 1] * columns, tf.int32), 0,
                                       columns - 1)], axis=1)
    return tf.tensor_scatter_nd_update(tf.zeros([rows, columns], tf.int32), cells,
                                       tf.cast(labels, tf.int32) + 1)


def loss(keras, config, spec):
    """(loss, metrics): cross-entropy over the cells, object cells weighted OBJECT_WEIGHT."""
    import tensorflow as tf

    def weighted_crossentropy(cells, heatmap):
        cells = tf.cast(cells, tf.int32)
        entropy = keras.losses.sparse_categorical_crossentropy(cells, heatmap)
        weights = tf.where(cells > 0, OBJECT_WEIGHT, 1.0)
        return tf.reduce_sum(entropy * weights) / tf.reduce_sum(weights)

    return weighted_crossentropy, []


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
    centres = np.stack([(truth["bbox"][:, 0] + truth["bbox"][:, 2]) / 2,
                        (truth["bbox"][:, 1] + truth["bbox"][:, 3]) / 2], 1) if len(
        truth["label"]) else np.zeros((0, 2))
    used = np.zeros(len(truth["label"]), bool)
    hits = 0
    for y, x, label, _ in sorted(found, key=lambda item: -item[3]):
        distance = np.hypot((centres[:, 0] - y) * rows, (centres[:, 1] - x) * columns)
        distance = np.where((truth["label"] == label) & ~used, distance, np.inf)
        if len(distance) and distance.min() <= 1.0:
            used[distance.argmin()] = True
            hits += 1
    return hits


def scores(truths: list[dict], heatmaps: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """Centroid precision, recall and F1 over a split."""
    rows, columns = heatmaps.shape[1:3]
    hits = predicted = 0
    for truth, heatmap in zip(truths, heatmaps):
        found = centroids(heatmap, threshold)
        hits += match(truth, found, rows, columns)
        predicted += len(found)
    actual = sum(len(truth["label"]) for truth in truths)
    precision = hits / predicted if predicted else 0.0
    recall = hits / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"centroid_precision": precision, "centroid_recall": recall, "centroid_f1": f1,
            "true_objects": actual, "predicted_centroids": predicted}
