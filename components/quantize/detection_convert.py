"""TFLite conversion of a box detector (task detection) with the standard
TFLite_Detection_PostProcess custom op at its end, as TensorFlow's Object Detection API TF2
exporter builds it: the model's raw outputs are split into box offsets and class
probabilities (softmax over background + classes), and a tf.function annotated with
`experimental_implements="TFLite_Detection_PostProcess"` and the op's attributes receives them
with the anchors as a constant; the converter legalises that call into the custom op, which
LiteRT (and MediaPipe) run as a built-in kernel. Its four outputs are the locations [1, K, 4]
(ymin, xmin, ymax, xmax fractions), classes [1, K], scores [1, K] and number of detections [1].

Quantized variants quantize the network; the postprocess op has no integer kernel and stays
float (the converter puts a DEQUANTIZE before it), the input stays float32 so the same
raw-pixel contract holds (the quantize stage records what each variant contains).
"""

from __future__ import annotations

import numpy as np

from edgepipe.contracts.litert import DETECTION_OP as OP


def implements_signature(num_classes: int, max_detections: int, score_threshold: float,
                         iou_threshold: float) -> str:
    from edgepipe.models.ssd import BOX_SCALES  # imports TensorFlow: only when converting

    attributes = [
        f'name: "{OP}"',
        f'attr {{ key: "max_detections" value {{ i: {max_detections} }} }}',
        'attr { key: "max_classes_per_detection" value { i: 1 } }',
        'attr { key: "use_regular_nms" value { b: false } }',
        f'attr {{ key: "nms_score_threshold" value {{ f: {score_threshold:f} }} }}',
        f'attr {{ key: "nms_iou_threshold" value {{ f: {iou_threshold:f} }} }}',
        f'attr {{ key: "y_scale" value {{ f: {BOX_SCALES[0]:f} }} }}',
        f'attr {{ key: "x_scale" value {{ f: {BOX_SCALES[1]:f} }} }}',
        f'attr {{ key: "h_scale" value {{ f: {BOX_SCALES[2]:f} }} }}',
        f'attr {{ key: "w_scale" value {{ f: {BOX_SCALES[3]:f} }} }}',
        f'attr {{ key: "num_classes" value {{ i: {num_classes} }} }}',
    ]
    return " ".join(attributes)


def serving_function(tf, model, model_info: dict):
    """The concrete batch-1 function: raw pixels -> the postprocess op's four outputs."""
    from edgepipe.components.shared import detection

    anchors = detection.anchors_of(model_info)
    num_classes = len(model_info["class_names"])

    @tf.function(experimental_implements=implements_signature(
        num_classes, detection.MAX_DETECTIONS, detection.SCORE_THRESHOLD, detection.NMS_IOU))
    def postprocess(box_encodings, class_predictions, anchor_boxes):
        # No TensorFlow equivalent: the converter replaces this call by the custom op.
        return (tf.constant(0.0, name="locations"), tf.constant(0.0, name="classes"),
                tf.constant(0.0, name="scores"), tf.constant(0.0, name="count"))

    @tf.function
    def serve(image):
        raw = tf.cast(model(image, training=False), tf.float32)
        offsets = tf.identity(raw[..., :4], name="box_encodings")
        probabilities = tf.identity(tf.nn.softmax(raw[..., 4:], axis=-1),
                                    name="class_predictions")
        return postprocess(offsets, probabilities, tf.constant(anchors))

    shape = (1, *model.input_shape[1:])
    return serve.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="image"))


def convert(model, variant: str, representative: np.ndarray, model_info: dict) -> bytes:
    """The .tflite of one variant: float32, dynamic_range, float16 or int8 (float input and
    output around int8 layers; the postprocess op stays float)."""
    import tensorflow as tf

    function = serving_function(tf, model, model_info)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.allow_custom_ops = True  # the postprocess op is a custom op LiteRT has built in
    recipe = {"qat_int8": "int8", "pruned_int8": "int8", "uint8": "int8"}.get(variant, variant)
    if recipe not in ("float32", "dynamic_range", "float16", "int8"):
        raise RuntimeError(f"variant {variant!r}: a detector converts to float32, "
                           "dynamic_range, float16 or int8; remove it from [quantize] variants.")
    if recipe != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if recipe == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if recipe == "int8":
        def representative_dataset():
            for row in representative:
                yield [row[np.newaxis].astype(np.float32)]

        converter.representative_dataset = representative_dataset
        # builtins beside int8: the float postprocess op and the float input around the
        # quantized network (the op has no integer kernel)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                               tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as error:  # the converter raises several unrelated types
        raise RuntimeError(f"TFLite conversion of detector variant {variant!r} failed "
                           f"({type(error).__name__}): {error}. Remove the variant from "
                           "[quantize] variants; no variant is replaced by a fallback.") from error
