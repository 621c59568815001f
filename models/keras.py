"""The one place that decides which Keras the project uses.

tf_keras (Keras 2) is required: tensorflow-model-optimization does not work with Keras 3,
and Keras 3 LSTMs convert to TFLite only with Flex ops (docs/architecture.md and the design notes it cites). Setting
TF_USE_LEGACY_KERAS before TensorFlow is imported makes `tf.keras` agree with it too.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras as keras  # noqa: E402  (must follow the environment variable)

__all__ = ["keras"]

# The custom layers edgepipe's models may hold, registered on import so that every
# keras.models.load_model of a model.keras finds them (models/audio_frontend.py).
from edgepipe.models import audio_frontend  # noqa: E402,F401
