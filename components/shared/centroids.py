"""The centroid detector's (models/fomo.py) labels, loss and read-out: one class per cell of
its coarse grid, and centroid precision / recall / F1 (task detection, `[train] model =
"fomo"`).

The labels and loss are here (TensorFlow); the read-out and the matching rule, which the
server shares, in edgepipe/contracts/centroids.py (numpy only). A cell is labelled with the class of the true box whose centre falls in it (1 + class; 0
background). The loss is cross-entropy weighted OBJECT_WEIGHT times on object cells (Edge
Impulse's FOMO weights them alike: they are a few cells among hundreds). Read-out: cells whose
most probable class is an object with probability >= threshold; neighbouring cells of one
class are merged into one centroid (their probability-weighted mean). A predicted centroid
matches the unmatched true box of its class whose centre is nearest, if within one cell.
"""

from __future__ import annotations

from typing import Any

# The read-out and the matching rule live in the neutral contracts (the server reads
# centroids too); re-exported here beside the labels they read.
from edgepipe.contracts.centroids import THRESHOLD, centroids, match, scores  # noqa: F401

OBJECT_WEIGHT = 10.0


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


def head(keras, model, spec: dict[str, Any]):
    """A centroid model (edgepipe.models.fomo) returns its heat map [batch, rows, columns,
    1 + classes] itself; anything else is refused here, before training."""
    from edgepipe.components.shared.task_heads import require_output

    classes = len(spec["class_names"])
    return require_output(model, 4, 1 + classes,
                          "[train] model = \"fomo\" (centroid detection) needs a heat map "
                          f"[batch, rows, columns, 1 + {classes}]: background and one "
                          "probability per class for every cell")


def spec(model, config) -> dict[str, Any]:
    """model.json's "grid": the heat map's rows and columns (the read-out's cell size)."""
    return {"grid": [int(size) for size in model.output_shape[1:3]]}
