"""Runs MediaPipe Tasks' ObjectDetector on an edgepipe detector, as an app would.

Runs inside the MediaPipe venv that benchmarks/mediapipe_check.py builds (mediapipe from PyPI,
no TensorFlow, none of edgepipe's code): it knows only the model's standard metadata.

stdin: {"model": path, "images": [png path], "score_threshold": s}
stdout: {"results": [[[xmin, ymin, width, height, class index, class name, score], ...]
                     per image]}  (pixels of the image given)
"""

import json
import sys


def main():
    job = json.load(sys.stdin)
    from mediapipe import Image
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import ObjectDetector, ObjectDetectorOptions

    options = ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=job["model"]),
                                    score_threshold=job["score_threshold"], max_results=-1)
    results = []
    with ObjectDetector.create_from_options(options) as detector:
        for path in job["images"]:
            found = detector.detect(Image.create_from_file(path))
            results.append([[d.bounding_box.origin_x, d.bounding_box.origin_y,
                             d.bounding_box.width, d.bounding_box.height,
                             d.categories[0].index, d.categories[0].category_name,
                             float(d.categories[0].score)] for d in found.detections])
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
