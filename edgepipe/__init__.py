"""edgepipe: from raw data to a model running on a device, with every number explained.

    import edgepipe
    result = edgepipe.run("configs/quickstart.toml", overrides={"train.epochs": 2},
                          root="runs/notebook")
    print(result.metrics["evaluate"]["accuracy"], result.tflite_path, result.report_path)

The packages: edgepipe.pipeline (orchestration: config, DAG, runner, store, cache),
edgepipe.components (one package per stage), edgepipe.models (Keras model builders),
edgepipe.serving (the HTTP model server), edgepipe.contracts (what stages and serving both
use: artifact files, model inputs, the tokenizer, LiteRT, the registry). The API itself is
edgepipe/api.py, loaded on first use so that importing a part (the model server in its small
image, say) does not load the pipeline.
"""

import os

# The parts (pipeline/, components/, ... beside this folder in a checkout) are mapped to
# edgepipe.pipeline, edgepipe.components, ... by the installer (pyproject's package-dir); a
# checkout is used through its editable install (`make install`), never by adding the
# repository folder to this package's path, which made edgepipe.tests, edgepipe.configs and a
# second copy of the API (edgepipe.edgepipe.api) importable.

# Before TensorFlow is ever imported: Keras 2 (see edgepipe/models/keras.py), no C++ info spam.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["run", "status", "load_config", "latest_run", "check_storage", "Result", "ConfigError",
           "StageFailed", "StorageError", "__version__"]


def __getattr__(name: str):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("edgepipe")
        except PackageNotFoundError:  # a source checkout on sys.path, not installed
            return "0+unknown"
    if name in __all__:
        from edgepipe import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgepipe' has no attribute {name!r}")
