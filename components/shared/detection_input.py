"""The tf.data input of a detector (task detection): (float32 image, targets) batches of one
split, the targets computed per image after its augmentation, so flipped, scaled and shifted
boxes are matched afresh: a box detector's anchor targets [N, 5]
(components/shared/detection.py), a centroid detector's cell classes [rows, columns]
(components/shared/centroids.py; model.json's task "centroids").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.components.shared import detection, examples_io


def ragged_boxes(objects) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all boxes [total, 4], all labels [total], boxes per image) of load_numpy's objects."""
    lengths = np.array([len(item["label"]) for item in objects], np.int64)
    boxes = (np.concatenate([item["bbox"] for item in objects]) if len(objects)
             else np.zeros((0, 4), np.float32)).astype(np.float32).reshape(-1, 4)
    labels = (np.concatenate([item["label"] for item in objects]) if len(objects)
              else np.zeros((0,), np.int64)).astype(np.int64)
    return boxes, labels, lengths


def dataset(tf, examples, split: str, model_info: dict[str, Any], batch_size: int,
            seed: int | None, shuffle_buffer: int, repeat: bool, input_context,
            drop_remainder: bool, augment: bool):
    data = examples_io.load_numpy(examples, split)
    boxes, labels, lengths = ragged_boxes(data["objects"])
    elements = tf.data.Dataset.from_tensor_slices((
        data["image"], tf.RaggedTensor.from_row_lengths(boxes, lengths),
        tf.RaggedTensor.from_row_lengths(labels, lengths)))
    if input_context is not None and input_context.num_input_pipelines > 1:
        elements = elements.shard(input_context.num_input_pipelines,
                                  input_context.input_pipeline_id)
    elements = elements.cache()
    if shuffle_buffer:
        elements = elements.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        elements = elements.repeat()
        drop_remainder = True
    encode = TARGETS[model_info.get("task", "detection")](tf, model_info)

    def targets(image, image_boxes, image_labels):
        image = tf.cast(image, tf.float32)
        if augment:
            image, image_boxes, image_labels = detection.augment(tf, image, image_boxes,
                                                                 image_labels)
        image_boxes = image_boxes[:detection.MAX_BOXES]
        image_labels = image_labels[:detection.MAX_BOXES]
        return image, encode(image_boxes, image_labels)

    elements = elements.map(targets, num_parallel_calls=tf.data.AUTOTUNE)
    return elements.batch(batch_size, drop_remainder=drop_remainder)


def _anchor_targets(tf, model_info: dict[str, Any]):
    anchors = detection.anchors_of(model_info)
    return lambda boxes, labels: detection.encode(tf, anchors, boxes, labels)


def _cell_targets(tf, model_info: dict[str, Any]):
    from edgepipe.components.shared import centroids

    rows, columns = model_info["grid"]
    return lambda boxes, labels: centroids.cell_labels(tf, boxes, labels, rows, columns)


# The targets of each detection task's model (edgepipe.contracts.tasks), from its model.json.
TARGETS = {"detection": _anchor_targets, "centroids": _cell_targets}
