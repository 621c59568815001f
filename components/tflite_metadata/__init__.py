"""The standard TFLite metadata of a model: `write(tflite_bytes, description) -> bytes`.

`description` is a `ModelDescription` (description.py): plain values, one per input and output
tensor, that say what a device must feed the model and how to read its answer. The package
knows no task and imports nothing else of edgepipe: a task describes its model, this writes
it. `read` gives back what is stored (the object-API tree of the vendored schema, whose enums
are in `schema`, and the packed files).
"""

from edgepipe.components.tflite_metadata import metadata_schema_generated as schema
from edgepipe.components.tflite_metadata.description import (
    AudioInput, ClassScores, DetectionOutput, FeatureInput, ImageInput, Input, ModelDescription,
    Output, TextInput, Values)
from edgepipe.components.tflite_metadata.flatbuffer import read
from edgepipe.components.tflite_metadata.writer import write

__all__ = ["write", "read", "schema", "ModelDescription", "ImageInput", "AudioInput",
           "FeatureInput", "TextInput", "ClassScores", "Values", "DetectionOutput", "Input",
           "Output"]
