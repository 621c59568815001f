"""Runs MediaPipe Tasks' AudioClassifier on edgepipe's keyword .tflite files, as an app would.

Runs inside the MediaPipe venv that benchmarks/mediapipe_check.py builds (mediapipe from PyPI,
no TensorFlow, none of edgepipe's code): it knows only what the model's standard metadata says
(the sample rate and channels of AudioProperties, the labels file). Each clip is given as
float samples at its own rate in AUDIO_CLIPS mode, one classifier for all clips.

stdin: {"jobs": [{"model": path, "clips": .npy path of float32 [N, samples], "sample_rate": Hz}]}
stdout: {"results": [[[(index, name, score), ...] per clip] per job]}
"""

import json
import sys

import numpy as np


def run(job):
    from mediapipe.tasks.python.audio import audio_classifier
    from mediapipe.tasks.python.audio.core.audio_task_running_mode import AudioTaskRunningMode
    from mediapipe.tasks.python.components.containers import audio_data
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = audio_classifier.AudioClassifierOptions(
        base_options=BaseOptions(model_asset_path=job["model"]), max_results=-1,
        running_mode=AudioTaskRunningMode.AUDIO_CLIPS)
    clips = np.load(job["clips"])
    found = []
    with audio_classifier.AudioClassifier.create_from_options(options) as classifier:
        for clip in clips:
            results = classifier.classify(
                audio_data.AudioData.create_from_array(clip.astype(np.float32),
                                                       job["sample_rate"]))
            found.append([[c.index, c.category_name, float(c.score)]
                          for c in results[0].classifications[0].categories])
    return found


if __name__ == "__main__":
    jobs = json.load(sys.stdin)["jobs"]
    json.dump({"results": [run(job) for job in jobs]}, sys.stdout)
