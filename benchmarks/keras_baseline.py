"""A plain, hand-written Keras baseline for full Fashion-MNIST, to compare the pipeline with.

No pipeline code: numpy arrays from the IDX gz files of Debian's dataset-fashion-mnist
(`apt-get install dataset-fashion-mnist`), the small `cnn` (Conv32-pool-Conv64-pool-Dropout-
Dense128-Dense10, 421,642 parameters), inputs standardised in numpy as (x - mean) / std with the
training split's pixel statistics, Adam 1e-3 (constant), batch 64, 10 epochs, model.fit on the
arrays. The 60,000 training images are split as the pipeline splits them: an image goes to
validation when sha256("train-images-idx3-ubyte.gz:<index>") (first 8 bytes / 2**64) < 0.1,
which leaves 53,9xx for training. Then the test accuracy (10,000 images), then a full-int8
TFLite conversion (batch-1 signature, 500 representative training images, int8 input and
output, TFLITE_BUILTINS_INT8 only) and its accuracy on the LiteRT interpreter at batch 1.

    .venv/bin/python benchmarks/keras_baseline.py [--epochs 10] [--seed 42]

Row (a) of benchmarks/framework_tax.py, which reads the last line: RESULT {json}.
"""

import argparse
import gzip
import hashlib
import json
import os
import struct
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """An IDX file (gzip) as a uint8 numpy array of the shape its header declares."""
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def pipeline_validation_mask(count, fraction=0.1):
    """True for the training records the pipeline holds out (hash of the record id)."""
    return np.array([
        int.from_bytes(hashlib.sha256(f"train-images-idx3-ubyte.gz:{i}".encode()).digest()[:8],
                       "big") / 2.0 ** 64 < fraction
        for i in range(count)])


def build_cnn():
    return keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], name="cnn")


class TrainTimer(keras.callbacks.Callback):
    """Seconds spent in training batches (excludes the per-epoch validation pass)."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_test_begin(self, logs=None):  # validation starts: the epoch's training is over
        self.seconds += time.perf_counter() - self.start


def int8_tflite(model, representative):
    @tf.function
    def serve(inputs):
        return model(inputs, training=False)

    function = serve.get_concrete_function(tf.TensorSpec((1, 28, 28, 1), tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[np.newaxis]] for row in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def litert_accuracy(content, x, y):
    """Accuracy of a TFLite model invoked once per example (batch 1) on the LiteRT interpreter;
    float inputs are quantized with the input tensor's scale and zero point."""
    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    feed = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    correct = 0
    for i in range(len(x)):
        interpreter.set_tensor(inp["index"], feed[i:i + 1])
        interpreter.invoke()
        correct += int(np.argmax(interpreter.get_tensor(out["index"])[0]) == y[i])
    return correct / len(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    started = time.perf_counter()

    x = read_idx(f"{DATA}/train-images-idx3-ubyte.gz").astype(np.float32)[..., np.newaxis]
    y = read_idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64)
    x_test = read_idx(f"{DATA}/t10k-images-idx3-ubyte.gz").astype(np.float32)[..., np.newaxis]
    y_test = read_idx(f"{DATA}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    held_out = pipeline_validation_mask(len(x))
    x_train, y_train, x_val, y_val = x[~held_out], y[~held_out], x[held_out], y[held_out]
    mean, std = x_train.mean(), x_train.std()
    x_train, x_val, x_test = [(a - mean) / std for a in (x_train, x_val, x_test)]
    print(f"train {len(x_train)}, validation {len(x_val)}, test {len(x_test)}; "
          f"pixel mean {mean:.3f}, std {std:.3f}")

    keras.utils.set_random_seed(args.seed)
    model = build_cnn()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    print(f"parameters: {model.count_params():,}")
    timer = TrainTimer()
    fit_start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, shuffle=True,
              validation_data=(x_val, y_val), callbacks=[timer], verbose=2)
    fit_seconds = time.perf_counter() - fit_start
    keras_accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)[1]

    rng = np.random.default_rng(0)
    representative = x_train[rng.choice(len(x_train), 500, replace=False)]
    convert_start = time.perf_counter()
    content = int8_tflite(model, representative)
    convert_seconds = time.perf_counter() - convert_start
    measure_start = time.perf_counter()
    int8_accuracy = litert_accuracy(content, x_test, y_test)
    measure_seconds = time.perf_counter() - measure_start

    images = len(x_train) * args.epochs
    print(f"training: {timer.seconds:.1f} s in training batches ({fit_seconds:.1f} s with "
          f"validation), {images / timer.seconds:,.0f} images/s")
    print(f"Keras test accuracy: {keras_accuracy:.4f}")
    print(f"int8 TFLite: {len(content):,} bytes, converted in {convert_seconds:.1f} s; test "
          f"accuracy {int8_accuracy:.4f} ({measure_seconds:.1f} s for 10,000 batch-1 invokes)")
    wall = time.perf_counter() - started
    print(f"wall time: {wall:.1f} s")
    print("RESULT " + json.dumps({
        "keras_accuracy": round(float(keras_accuracy), 4), "int8_accuracy": round(int8_accuracy, 4),
        "wall_seconds": round(wall, 1), "images_per_second": round(images / timer.seconds, 1),
        "train_seconds": round(timer.seconds, 1), "fit_seconds": round(fit_seconds, 1),
        "convert_seconds": round(convert_seconds, 1),
        "measure_seconds": round(measure_seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
