"""The box detector's training targets, loss and decoding (TensorFlow), shared by train,
evaluate and quantize (task detection; the model is edgepipe.models.ssd or a user's backbone
under its heads).

Targets: every anchor is matched to the true box it overlaps most; IoU >= POSITIVE_IOU makes it
a positive of that box's class (and each true box's best anchor is positive whatever its IoU),
IoU < NEGATIVE_IOU background, anything between ignored. Offsets follow the Faster R-CNN box
coder (models/ssd.BOX_SCALES), the encoding TFLite's TFLite_Detection_PostProcess op decodes.
Loss: softmax focal loss over background + classes (most anchors are easy background; the focal
term keeps them from drowning the few positives) plus Huber on the positives' offsets, both
divided by the number of positives. Decoding mirrors the op's fast path: per anchor its best
class, class-agnostic non-max suppression, at most MAX_DETECTIONS boxes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgepipe.models.ssd import BOX_SCALES, anchors as anchor_boxes

POSITIVE_IOU, NEGATIVE_IOU = 0.5, 0.4
MAX_BOXES = 100  # true boxes per image kept for matching (padded to this in tf.data)
MAX_DETECTIONS = 20
SCORE_THRESHOLD = 0.01  # low: mAP integrates over every score; serving filters higher
NMS_IOU = 0.5
FOCAL_GAMMA = 2.0


def anchors_of(model_info: dict[str, Any]) -> np.ndarray:
    """The anchors [N, 4] (yc, xc, h, w) of a model.json's "detector" entry."""
    spec = model_info["detector"]
    return anchor_boxes(spec["grids"], spec["scales"], spec["aspect_ratios"])


def corners(tf, boxes):
    """(yc, xc, h, w) -> (ymin, xmin, ymax, xmax)."""
    yc, xc, h, w = tf.unstack(boxes, axis=-1)
    return tf.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)


def iou(tf, first, second):
    """[N, M] IoU of corner boxes [N, 4] and [M, 4]."""
    top = tf.maximum(first[:, None, 0], second[None, :, 0])
    left = tf.maximum(first[:, None, 1], second[None, :, 1])
    bottom = tf.minimum(first[:, None, 2], second[None, :, 2])
    right = tf.minimum(first[:, None, 3], second[None, :, 3])
    inter = tf.maximum(bottom - top, 0.0) * tf.maximum(right - left, 0.0)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / tf.maximum(area(first)[:, None] + area(second)[None, :] - inter, 1e-9)


def encode(tf, anchors, boxes, labels):
    """[N, 5] targets of one image: offsets (ty, tx, th, tw) and the class + 1 (0 background,
    -1 ignored), from boxes [n, 4] (ymin, xmin, ymax, xmax) and labels [n]."""
    anchors = tf.constant(anchors, tf.float32)
    count = tf.shape(boxes)[0]
    boxes = tf.concat([tf.cast(boxes, tf.float32), tf.zeros([1, 4])], axis=0)  # never empty
    overlaps = iou(tf, corners(tf, anchors), boxes)                           # [N, n + 1]
    overlaps = tf.where(tf.range(count + 1)[None, :] < count, overlaps, -1.0)
    best_box = tf.argmax(overlaps, axis=1, output_type=tf.int32)
    best_iou = tf.reduce_max(overlaps, axis=1)
    best_anchor = tf.argmax(overlaps[:, :count], axis=0, output_type=tf.int32)  # per box
    best_box = tf.tensor_scatter_nd_update(best_box, best_anchor[:, None], tf.range(count))
    best_iou = tf.tensor_scatter_nd_update(best_iou, best_anchor[:, None],
                                           tf.ones([count]) * 2.0)
    classes = tf.gather(tf.concat([tf.cast(labels, tf.float32) + 1.0, [0.0]], 0), best_box)
    classes = tf.where(best_iou >= POSITIVE_IOU, classes,
                       tf.where(best_iou < NEGATIVE_IOU, 0.0, -1.0))
    matched = tf.gather(boxes, best_box)
    height = tf.maximum(matched[:, 2] - matched[:, 0], 1e-6)
    width = tf.maximum(matched[:, 3] - matched[:, 1], 1e-6)
    yc, xc = matched[:, 0] + height / 2, matched[:, 1] + width / 2
    ay, ax, ah, aw = tf.unstack(anchors, axis=1)
    offsets = tf.stack([(yc - ay) / ah * BOX_SCALES[0], (xc - ax) / aw * BOX_SCALES[1],
                        tf.math.log(height / ah) * BOX_SCALES[2],
                        tf.math.log(width / aw) * BOX_SCALES[3]], axis=1)
    return tf.concat([offsets, classes[:, None]], axis=1)


def decode(tf, anchors, offsets):
    """[..., N, 4] offsets -> [..., N, 4] (ymin, xmin, ymax, xmax) fractions."""
    ay, ax, ah, aw = tf.unstack(tf.constant(anchors, tf.float32), axis=-1)
    ty, tx, th, tw = tf.unstack(offsets, axis=-1)
    yc, xc = ty / BOX_SCALES[0] * ah + ay, tx / BOX_SCALES[1] * aw + ax
    h, w = tf.exp(th / BOX_SCALES[2]) * ah, tf.exp(tw / BOX_SCALES[3]) * aw
    return tf.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)


def loss(keras, config, spec: dict[str, Any]):
    """(loss, metrics) of the box detector: focal classification + Huber offsets."""
    import tensorflow as tf

    huber = keras.losses.Huber(delta=1.0, reduction="none")

    def detection_loss(targets, raw):
        raw = tf.cast(raw, tf.float32)
        classes = targets[..., 4]
        valid = tf.cast(classes >= 0, tf.float32)
        positive = tf.cast(classes > 0, tf.float32)
        positives = tf.maximum(tf.reduce_sum(positive), 1.0)
        entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.cast(tf.maximum(classes, 0), tf.int32), raw[..., 4:])
        focal = tf.pow(1.0 - tf.exp(-entropy), FOCAL_GAMMA) * entropy
        box = huber(targets[..., None, :4], raw[..., None, :4])[..., 0] * 4.0  # sum of four
        return (tf.reduce_sum(focal * valid) + tf.reduce_sum(box * positive)) / positives

    return detection_loss, []


def postprocess(tf, raw, anchors, max_detections: int = MAX_DETECTIONS,
                score_threshold: float = SCORE_THRESHOLD, iou_threshold: float = NMS_IOU):
    """{"boxes" [B, K, 4], "classes" [B, K], "scores" [B, K], "count" [B]} of raw outputs
    [B, N, 5 + C], padded with zeros past each image's count: what TFLite's
    TFLite_Detection_PostProcess op gives (fast path: one class per anchor, class-agnostic
    non-max suppression)."""
    probabilities = tf.nn.softmax(tf.cast(raw[..., 4:], tf.float32), axis=-1)[..., 1:]
    boxes = decode(tf, anchors, tf.cast(raw[..., :4], tf.float32))
    scores = tf.reduce_max(probabilities, axis=-1)
    classes = tf.cast(tf.argmax(probabilities, axis=-1), tf.float32)

    def one(image):
        image_boxes, image_scores, image_classes = image
        chosen, _ = tf.image.non_max_suppression_with_scores(
            image_boxes, image_scores, max_detections, iou_threshold, score_threshold)
        count = tf.shape(chosen)[0]
        pad = [[0, max_detections - count]]
        return (tf.pad(tf.gather(image_boxes, chosen), pad + [[0, 0]]),
                tf.pad(tf.gather(image_classes, chosen), pad),
                tf.pad(tf.gather(image_scores, chosen), pad), tf.cast(count, tf.float32))

    found = tf.map_fn(one, (boxes, scores, classes), fn_output_signature=(
        tf.TensorSpec([max_detections, 4], tf.float32), tf.TensorSpec([max_detections]),
        tf.TensorSpec([max_detections]), tf.TensorSpec([], tf.float32)))
    return dict(zip(("boxes", "classes", "scores", "count"), found))


def augment(tf, image, boxes, labels, seed_pixels: int = 114):
    """A randomly flipped, scaled (0.75..1.25) and shifted (up to 10% each way) copy of one
    image [H, W, C] (float32) with its boxes moved alike; boxes left with under half of their
    area inside the picture are dropped."""
    height, width = image.shape[0], image.shape[1]
    flip = tf.random.uniform([]) < 0.5
    image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
    boxes = tf.cond(flip, lambda: tf.stack([boxes[:, 0], 1 - boxes[:, 3], boxes[:, 2],
                                            1 - boxes[:, 1]], axis=1), lambda: boxes)
    size = 1.0 / tf.random.uniform([], 0.75, 1.25)  # the window's side, in image widths
    top = (1.0 - size) / 2 + tf.random.uniform([], -0.1, 0.1)
    left = (1.0 - size) / 2 + tf.random.uniform([], -0.1, 0.1)
    window = tf.stack([top, left, top + size, left + size])
    image = tf.image.crop_and_resize(image[None], window[None], [0], [height, width],
                                     extrapolation_value=float(seed_pixels))[0]
    moved = (boxes - tf.stack([top, left, top, left])) / size
    clipped = tf.clip_by_value(moved, 0.0, 1.0)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    kept = area(clipped) >= 0.5 * tf.maximum(area(moved), 1e-9)
    return image, tf.boolean_mask(clipped, kept), tf.boolean_mask(labels, kept)
