"""Helpers several stages use: the Beam pipeline factory and its worker, the reader of the Examples artifact (TFDS), and the tf.data input pipeline of model inputs."""
