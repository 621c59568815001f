"""Reads .tflite files with tflite-support 0.4.4, run in its own venv (tests/components/
metadata_readers.py builds it): the maintained readers of the standard TFLite metadata, not
edgepipe's writer. No TensorFlow and none of edgepipe's code is imported here.

stdin: {"models": [{"path", "images": [[H, W, C] uint8 nested lists] | null,
                    "texts": [str] | null}]}
stdout: {"results": [{"metadata": <MetadataDisplayer's JSON>, "packed": [names],
                      "files": {name: text}, "images": [[(index, name, score)...]],
                      "texts": [[(index, name, score)...]]}]}

The metadata JSON comes from the C++ MetadataDisplayer (flatbuffers reflection over the schema
bundled in the wheel); classifications from the TFLite Task Library's ImageClassifier and
NLClassifier, which read labels, normalisation and the RegexTokenizer from the metadata.
"""

import json
import sys

import numpy as np
from tensorflow_lite_support.metadata.python import metadata as metadata_module


def categories(result):
    return [[category.index, category.category_name, category.score]
            for category in result.classifications[0].categories]


def read(job):
    from tflite_support.task import text, vision

    displayer = metadata_module.MetadataDisplayer.with_model_file(job["path"])
    packed = sorted(displayer.get_packed_associated_file_list())
    result = {"metadata": json.loads(displayer.get_metadata_json()), "packed": packed,
              "files": {name: displayer.get_associated_file_buffer(name).decode("utf-8")
                        for name in packed}}
    if job.get("images") is not None:
        classifier = vision.ImageClassifier.create_from_file(job["path"])
        # The arrays and TensorImages stay referenced until classified: TensorImage keeps a
        # pointer into the array's memory.
        arrays = [np.ascontiguousarray(image, np.uint8) for image in job["images"]]
        tensors = [vision.TensorImage.create_from_array(array) for array in arrays]
        result["images"] = [categories(classifier.classify(tensor)) for tensor in tensors]
    if job.get("texts") is not None:
        # A new classifier per text: the Task Library, like MediaPipe, never resets a fused
        # LSTM's state between texts.
        result["texts"] = [
            categories(text.NLClassifier.create_from_file(job["path"]).classify(sentence))
            for sentence in job["texts"]]
    return result


if __name__ == "__main__":
    jobs = json.load(sys.stdin)["models"]
    json.dump({"results": [read(job) for job in jobs]}, sys.stdout)
