"""Choose the tf.distribute strategy that training runs under, from the runtime settings.

The strategy is a runtime setting (where work runs), not part of a stage's config: the same
model trains on a laptop CPU, several GPUs, several machines or a TPU. TensorFlow is imported
inside the function so that importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pipeline.stage import Runtime

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


def choose_strategy(runtime: Runtime) -> tuple[Any, str, int]:
    """Returns (strategy, description, number of replicas in sync).

    "auto" picks a TPU when `runtime.tpu_address` is set, MirroredStrategy when more than one
    GPU is visible, and otherwise TensorFlow's default strategy (one device, no wrapping).
    """
    import tensorflow as tf

    name = runtime.strategy
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown distribution strategy {name!r}. Expected one of {list(STRATEGIES)}; "
            "set the runtime strategy (e.g. --strategy on the command line) to one of them."
        )
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if runtime.tpu_address:
            name = "tpu"
        elif len(gpus) > 1:
            name = "mirrored"
        else:
            name = "default"

    if name == "default":
        strategy = tf.distribute.get_strategy()
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        description = f"default ({devices[0].name})"
    elif name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        device = gpus[0].name if gpus else "/cpu:0"
        strategy = tf.distribute.OneDeviceStrategy(device)
        description = f"one_device ({device})"
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        devices = ", ".join(strategy.extended.worker_devices)
        description = f"mirrored ({devices})"
    elif name == "multi_worker":
        strategy = _multi_worker(tf)
        resolver = strategy.cluster_resolver
        description = (
            f"multi_worker (task {resolver.task_type}:{resolver.task_id} of "
            f"{len(resolver.cluster_spec().as_dict().get('worker', []))} workers)"
        )
    else:  # tpu
        strategy = _tpu(tf, runtime.tpu_address)
        description = f"tpu ({runtime.tpu_address or 'local'})"
    return strategy, description, int(strategy.num_replicas_in_sync)


def _multi_worker(tf):
    """MultiWorkerMirroredStrategy; the cluster and this process's role come from TF_CONFIG."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise ValueError(
            "Strategy 'multi_worker' needs the TF_CONFIG environment variable, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}; set it on every worker.'
        )
    try:
        config = json.loads(raw)
        config["cluster"]["worker"]
        config["task"]["type"], config["task"]["index"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"TF_CONFIG is not valid for multi_worker training ({error!r}): expected JSON with "
            '"cluster": {"worker": [...]} and "task": {"type": "worker", "index": N}.'
        ) from error
    return tf.distribute.MultiWorkerMirroredStrategy()


def _tpu(tf, address: str):
    """TPUStrategy on the TPU at `address` (grpc://host:port or a TPU name; "" = local)."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
