"""Runs MediaPipe Tasks' classifiers on edgepipe's .tflite files, as an app would.

Runs inside the MediaPipe venv that benchmarks/mediapipe_check.py builds (mediapipe from PyPI,
no TensorFlow, none of edgepipe's code): it knows only what the model's standard metadata says
and what docs/use-in-an-app.md tells an app to do (pass RGB images; lowercase texts).

stdin: {"jobs": [{"model": path, "kind": "image" | "text", "inputs": [png path | text]}]}
stdout: {"results": [[[(index, name, score), ...] per input] per job]}

One classifier per job serves every input, as in an app.
"""

import json
import sys


def categories(result):
    return [[category.index, category.category_name, float(category.score)]
            for category in result.classifications[0].categories]


def run(job):
    from mediapipe import Image
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = {"base_options": BaseOptions(model_asset_path=job["model"]), "max_results": -1}
    if job["kind"] == "image":
        from mediapipe.tasks.python.vision import ImageClassifier, ImageClassifierOptions

        with ImageClassifier.create_from_options(ImageClassifierOptions(**options)) as classifier:
            return [categories(classifier.classify(Image.create_from_file(path)))
                    for path in job["inputs"]]
    from mediapipe.tasks.python.text import TextClassifier, TextClassifierOptions

    with TextClassifier.create_from_options(TextClassifierOptions(**options)) as classifier:
        # MediaPipe does not lowercase; the model was trained on lowercased tokens.
        return [categories(classifier.classify(text.lower())) for text in job["inputs"]]


if __name__ == "__main__":
    jobs = json.load(sys.stdin)["jobs"]
    json.dump({"results": [run(job) for job in jobs]}, sys.stdout)
