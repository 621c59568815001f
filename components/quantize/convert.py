"""TFLite conversion recipes of the quantize stage's variants, from a fixed batch-1 signature.

Every variant is converted from a concrete function with batch size 1 and the model's own input
dtype: float32 raw values (normalisation stays inside the model), or int32 token ids for text
models, which stay int32 in every variant (full int8 included: ids are indices into the
embedding, not values to quantize; the embedding becomes a GATHER of quantized rows). A dynamic
batch dimension breaks LSTM conversion, and the Keras model must be passed to the converter as
well for each LSTM to become one fused sequence-LSTM op. A recipe that cannot be done fails
with the reason and the variants that would work; none silently falls back to another (no float
fallback under int8 or int16x8). TensorFlow is imported inside the functions that use it.

`int8_io = "float32"` gives the full-integer variants float32 input and output and keeps the
Normalization layer that reads the raw input in float (selective quantization through
TensorFlow's QuantizationDebugger): one int8 scale for a whole input tensor zeroes the small
features of a table whose columns differ in scale (measured on breast_cancer_mlp: int8 input
0.66 test accuracy, float input with float normalisation 0.98, Keras 0.98).
"""

from __future__ import annotations

import warnings

import numpy as np

from edgepipe.components.shared import forecast_head

# The converter recipe of each variant; fine-tuned variants convert like full int8.
# uint8 is the int8 recipe with uint8 input and output (the caller passes int8_io="uint8").
RECIPES = {"qat_int8": "int8", "pruned_int8": "int8", "uint8": "int8"}
FUSED_LSTM_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM")


def check_recurrent(model, variant: str, ops: list[str]) -> None:
    """An LSTM must become a fused sequence-LSTM op (or, with unroll=True, plain ops per step),
    never a WHILE loop or a Flex op."""
    recurrent = [layer.name for layer in model.submodules
                 if type(layer).__name__ in ("LSTM", "GRU", "SimpleRNN")]
    if not recurrent:
        return
    unrolled = all(getattr(layer, "unroll", False) for layer in model.submodules
                   if type(layer).__name__ in ("LSTM", "GRU", "SimpleRNN"))
    fused = [op for op in ops if op in FUSED_LSTM_OPS]
    loose = [op for op in ops if op == "WHILE" or op.startswith("Flex")]
    if (not fused and not unrolled) or loose:  # unrolled LSTMs become plain ops, no loop
        raise RuntimeError(
            f"variant {variant!r}: the recurrent layer(s) {recurrent} converted to ops {ops}, "
            f"not one fused {' or '.join(FUSED_LSTM_OPS)} op with builtin ops only. Only LSTM "
            "layers without masking fuse (GRU and SimpleRNN do not); use an LSTM model, or "
            "remove the variant from [quantize] variants."
        )


# Why a recipe can fail on some models, and which variants do work there.
CONVERSION_HINTS = {
    "int16x8": "16x8 quantization has no kernels for some ops in this TensorFlow (sequence "
    "LSTMs among them); the int8 and dynamic_range variants convert such models with builtin "
    "ops: remove int16x8 from [quantize] variants",
}


def convert(model, variant: str, representative: np.ndarray, int8_io: str = "int8") -> bytes:
    """The TFLite flatbuffer of one variant; raises naming the variant if conversion fails."""
    import tensorflow as tf

    example_shape = tuple(model.input_shape[1:])
    input_dtype = tf.as_dtype(model.inputs[0].dtype)
    recipe = RECIPES.get(variant, variant)

    @tf.function
    def serve(inputs):
        return model(inputs, training=False)

    # Fixed batch 1: the shape a device invokes with, and the one LSTMs need to convert.
    signature = tf.TensorSpec((1, *example_shape), input_dtype, name=model.input_names[0])
    function = serve.get_concrete_function(signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    if recipe != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if recipe == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if recipe in ("int8", "int16x8"):

        def representative_dataset():
            for row in representative:
                yield [row[np.newaxis].astype(input_dtype.as_numpy_dtype)]

        converter.representative_dataset = representative_dataset
    if recipe == "int8" and int8_io == "float32":
        return _float_normalization_int8(tf, converter, model, function, variant,
                                         representative_dataset)
    if recipe == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_output_type = getattr(tf, int8_io)
        if input_dtype.is_floating:  # integer inputs (token ids) are fed as they are
            converter.inference_input_type = getattr(tf, int8_io)
    if recipe == "int16x8":
        # No TFLITE_BUILTINS beside it: an op without a 16x8 kernel fails, never stays float.
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    return _convert(converter.convert, variant)


def _convert(convert_function, variant: str) -> bytes:
    try:
        return convert_function()
    except Exception as error:  # the converter raises several unrelated types
        hint = CONVERSION_HINTS.get(variant, "Remove the variant from [quantize] variants or "
                                    "change the model")
        raise RuntimeError(
            f"TFLite conversion of variant {variant!r} failed ({type(error).__name__}): {error}. "
            f"{hint}; no variant is ever replaced by a fallback."
        ) from error


def _input_normalizations(model) -> list[str]:
    """Names of the layers that stay float in the int8 variants with float32 input: the
    Normalization layers that read the model's input directly, every layer that asks for
    it with `keep_float = True` (an audio front end: models/audio_frontend.py), and a
    forecasting model's per-window scaling (components/shared/forecast_head.py)."""
    return [layer.name for layer in model.layers if getattr(layer, "keep_float", False)
            or type(layer).__name__ == "Normalization"
            and any(node.inbound_layers and type(node.inbound_layers).__name__ == "InputLayer"
                    for node in layer.inbound_nodes)] + forecast_head.scaling_layers(model)


def _float_normalization_int8(tf, converter, model, function, variant: str,
                              representative_dataset):
    """Full int8 after the input's Normalization, which stays float (float32 input and
    output): the QuantizationDebugger's denylist keeps that layer's tensors unquantized."""
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                           tf.lite.OpsSet.TFLITE_BUILTINS]
    layers = _input_normalizations(model)
    if not layers:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return _convert(converter.convert, variant)
    from ai_edge_litert.interpreter import Interpreter

    float_model = tf.lite.TFLiteConverter.from_concrete_functions(
        [function], model).convert()  # the same graph unquantized: its tensor names
    names = [tensor["name"] for tensor in
             Interpreter(model_content=float_model).get_tensor_details()]
    nodes = [name for name in names if any(f"/{layer}/" in name for layer in layers)]
    with warnings.catch_warnings():  # the debugger itself still uses tf.lite.Interpreter
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative_dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes))
        return _convert(debugger.get_nondebug_quantized_model, variant)
