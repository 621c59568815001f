"""One loaded model version: its files, its input spec, and the runtime that predicts with it.

The default runtime is the version's model.tflite on LiteRT: a pool of interpreters (one per
worker; a request holds one for its whole batch), inputs prepared by
edgepipe.contracts.model_inputs (the one place that pads and casts, and tokenises texts with
the vocabulary in model.json) and fed by edgepipe.contracts.litert, exactly as the quantize
stage measured them. The SavedModel runtime is an option and the only thing in this package
that imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import queue
import time
from typing import Any

import numpy as np

from edgepipe.contracts import artifacts, checksums, litert, model_inputs, registry, tasks
from edgepipe.serving.generation import GeneratorRuntime
from edgepipe.serving.requests import InputSpec

RUNTIMES = ("litert", "saved_model")
# Tasks whose versions run their own way (always their .tflite on LiteRT), by task name.
TASK_RUNTIMES = {"generation": GeneratorRuntime}
TIMED_PREDICTS = 9  # warm-up predicts timed to measure invoke_seconds (their median)
log = logging.getLogger("edgepipe.serve")


class ChecksumMismatch(ValueError):
    """A file of the version differs from the checksums.json written when it was pushed."""


class LiteRTRuntime:
    """Interpreters over one .tflite model; predict() is safe from many threads at once."""

    def __init__(self, path: pathlib.Path, workers: int):
        from ai_edge_litert.interpreter import Interpreter

        content = path.read_bytes()
        self.pool: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(workers):
            interpreter = Interpreter(model_content=content, num_threads=1)
            interpreter.allocate_tensors()
            self.pool.put(interpreter)
        interpreter = self.pool.get()
        self.pool.put(interpreter)
        self.input = interpreter.get_input_details()[0]
        self.output = interpreter.get_output_details()[0]
        self.input_dtype = np.dtype(self.input["dtype"])
        # a detector's four outputs, named by its postprocess op; None for one output
        self.roles = (litert.detection_roles(content)
                      if len(interpreter.get_output_details()) > 1 else None)
        self.batch_size = int(self.input["shape"][0])
        self.example_shape = tuple(int(size) for size in self.input["shape"][1:])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Model inputs [N, ...] (float32 values, or int32 token ids) -> float32 outputs
        [N, ...], one invoke per example."""
        if batch.shape[1:] != self.example_shape:
            raise ValueError(f"the interpreter takes examples of shape {self.example_shape}, got {batch.shape[1:]}")
        interpreter = self.pool.get()
        try:
            outputs = litert.invoke_each(interpreter, batch)
        finally:
            self.pool.put(interpreter)
        return outputs if self.roles is None else litert.detections_by_role(outputs, self.roles)


class SavedModelRuntime:
    """The version's SavedModel through its serving_default signature (needs TensorFlow)."""

    def __init__(self, path: pathlib.Path, spec: InputSpec, output: str = "probabilities"):
        import tensorflow as tf

        self.tf = tf
        self.output = output  # the task's output key (edgepipe.contracts.tasks)
        self.function = tf.saved_model.load(str(path)).signatures["serving_default"]
        self.spec = spec
        # The signature's own input name: "tokens" for a text model, else the feature's.
        (self.input_name,) = self.function.structured_input_signature[1]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        feed = self.tf.constant(batch.astype(self.spec.dtype))
        found = self.function(**{self.input_name: feed})
        if self.output in found:
            return found[self.output].numpy()
        # a detector: "<output>_boxes", "_classes", "_scores", "_count"
        return {key.rsplit("_", 1)[-1]: value.numpy() for key, value in found.items()}


@dataclasses.dataclass
class ModelVersion:
    name: str
    version: int
    path: pathlib.Path
    metadata: dict[str, Any]
    model_json: dict[str, Any]
    spec: InputSpec
    class_names: list[str]  # a classifier's classes; a regression model's target names
    runtime_name: str
    runtime: Any
    task: tasks.Task = tasks.CLASSIFICATION
    load_seconds: float = 0.0
    invoke_seconds: float = 0.0  # median of one warm single-example predict (warm_up measures it)

    def predict(self, values: list[np.ndarray]) -> np.ndarray:
        """Checked examples (serving.requests) -> the model's output, float32 [N, classes]
        (probabilities) or [N, targets] (regression values in the data's units)."""
        batch = model_inputs.prepare(self.model_json, _stack(values, self.spec))
        return self.runtime.predict(batch)


def load(name: str, version: int, path: pathlib.Path, runtime: str, workers: int) -> ModelVersion:
    """Load a registry version and check it with a warm-up predict; raises if it is unusable."""
    started = time.monotonic()
    verify_checksums(name, version, path)
    metadata = registry.read_version_metadata(path)
    model_json = artifacts.read_model_info(path)
    spec = InputSpec.from_model_json(model_json)
    task = tasks.of_model(model_json)
    if task.name in TASK_RUNTIMES:  # a model that is not one input -> one output (a generator)
        engine = TASK_RUNTIMES[task.name](path, workers)
        loaded = ModelVersion(name, version, path, metadata, model_json, spec, [], "litert",
                              engine, task)
        loaded.invoke_seconds = engine.warm_up()
        loaded.load_seconds = round(time.monotonic() - started, 3)
        return loaded
    if runtime == "litert":
        engine = LiteRTRuntime(path / registry.TFLITE_MODEL, workers)
    elif runtime == "saved_model":
        # The version folder is the SavedModel (older versions: its saved_model/).
        engine = SavedModelRuntime(pathlib.Path(registry.saved_model_dir(path)), spec,
                                   task.output)
    else:
        raise ValueError(f"unknown runtime {runtime!r}; expected one of {RUNTIMES}")
    names = list(metadata.get("class_names") or model_json.get("class_names")
                 or model_json.get("target_names") or [])
    loaded = ModelVersion(name, version, path, metadata, model_json, spec, names, runtime,
                          engine, task)
    warm_up(loaded)
    loaded.load_seconds = round(time.monotonic() - started, 3)
    return loaded


def verify_checksums(name: str, version: int, path: pathlib.Path) -> None:
    """Every file's SHA-256 against the checksums.json of the push; a version pushed before
    checksums were recorded loads with a warning."""
    mismatched = checksums.verify(path)
    if mismatched is None:
        log.warning("model %s version %d has no %s (pushed before checksums were recorded): its "
                    "files are not verified", name, version, checksums.CHECKSUMS)
    elif mismatched:
        raise ChecksumMismatch(f"checksum mismatch: {', '.join(mismatched)} (in {path}: the bytes "
                               "differ from what was pushed; push the model again)")


def warm_up(model: ModelVersion) -> None:
    """Predicts on a blank example: the output must be one finite value per class (target);
    the median time of the later ones is the version's invoke_seconds."""
    blank = np.zeros(model.spec.shape, dtype=model.spec.dtype)
    outputs = model.predict([blank])
    expected = (1, len(model.class_names))
    if isinstance(outputs, dict):  # a detector: boxes, classes, scores and their count
        outputs = np.concatenate([np.ravel(outputs[key]) for key in
                                  ("boxes", "classes", "scores", "count")])[None]
        expected = outputs.shape
    elif outputs.ndim == 4:  # a heat map (centroids): background + a probability per class
        expected = (1, *outputs.shape[1:3], 1 + len(model.class_names))
    if outputs.shape != expected:
        what = "probability per class" if model.task.label == "class" else "value per target"
        raise ValueError(
            f"{model.path}: the warm-up predict returned shape {outputs.shape}, expected "
            f"{expected} (one {what} in metadata.json)"
        )
    if not np.all(np.isfinite(outputs)):
        raise ValueError(f"{model.path}: the warm-up predict returned non-finite values")
    seconds = []
    for _ in range(TIMED_PREDICTS):
        started = time.perf_counter()
        model.predict([blank])
        seconds.append(time.perf_counter() - started)
    model.invoke_seconds = sorted(seconds)[len(seconds) // 2]


def _stack(values: list[np.ndarray], spec: InputSpec):
    # Sequences of several lengths, texts and audio clips stay a list: model_inputs.prepare
    # pads them.
    return values if spec.variable_length or spec.name in ("text", "audio") else np.stack(values)
