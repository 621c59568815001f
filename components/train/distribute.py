"""The tf.distribute side of training: strategy, worker role, sharded input, precision.

The strategy is a runtime setting (where work runs), not part of a stage's config: the same
model trains on a laptop CPU, several GPUs, several machines or a TPU. The input pipeline is
built per input pipeline (one per worker) through the strategy's InputContext, so workers
read disjoint shards of the training split. TensorFlow is passed in or imported inside the
functions so that importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from edgepipe.pipeline.stage import Runtime

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where training runs and what that does to the batch and the learning rate."""

    strategy: Any
    description: str  # e.g. "default (/device:CPU:0)", "multi_worker (task worker:1 of 2 ...)"
    replicas: int
    chief: bool  # only the chief commits the artifact
    role: str  # "chief", "worker-1", ...
    global_batch: int  # per-replica batch x replicas
    learning_rate: float  # after the scaling rule


def place(runtime: Runtime, batch_size: int, learning_rate: float,
          lr_scaling: str) -> Placement:
    """The strategy for `runtime`, this process's role in it, and the global batch and
    learning rate ("linear" scaling multiplies the rate by the number of replicas)."""
    strategy, description, replicas = choose_strategy(runtime)
    chief, role = worker_role(strategy)
    return Placement(strategy, description, replicas, chief, role, batch_size * replicas,
                     learning_rate * (replicas if lr_scaling == "linear" else 1))


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


def worker_role(strategy) -> tuple[bool, str]:
    """(is this process the chief, a name for it such as "chief", "worker-1").

    Without a cluster (one process) the process is the chief. In a multi-worker cluster the
    chief is task "chief" if the cluster has one, else worker 0, as in Keras's own rule.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster or resolver.task_type in (None, "tpu_worker"):
        return True, "chief"
    if "chief" in cluster:
        chief = resolver.task_type == "chief"
    else:
        chief = resolver.task_type == "worker" and resolver.task_id == 0
    return chief, "chief" if chief else f"{resolver.task_type}-{resolver.task_id}"


def sharded_dataset(tf, strategy, make_dataset, global_batch: int):
    """The training input, one pipeline per worker through the strategy's InputContext.

    `make_dataset(input_context, per_replica_batch)` builds the batches of one input
    pipeline; it must shard by `input_context.input_pipeline_id`, so no two workers read the
    same examples in an epoch. Returns what model.fit takes (with steps_per_epoch).
    """
    if strategy.num_replicas_in_sync == 1 and getattr(strategy, "cluster_resolver", None) is None:
        # One device, one pipeline: the plain dataset, without the distributed iterator's
        # per-step overhead.
        return make_dataset(tf.distribute.InputContext(), global_batch)

    def dataset_fn(input_context):
        per_replica = input_context.get_per_replica_batch_size(global_batch)
        return make_dataset(input_context, per_replica)

    return strategy.distribute_datasets_from_function(dataset_fn)


def barrier(tf, strategy) -> None:
    """Under multi-worker training, return only once every worker has called this: a
    cross-worker all-reduce of a constant. A no-op for every other strategy."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        ones = strategy.run(lambda: tf.constant(1.0))
        strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)


def set_precision(keras, precision: str, strategy_name: str) -> None:
    """Set Keras's global dtype policy: "float32", or mixed precision where it pays off.

    bfloat16 is TPU's native format (and runs on recent CPUs); float16 needs a GPU, where
    Keras wraps the optimizer in loss scaling. Builders keep their output layer in float32.
    """
    import tensorflow as tf

    if precision not in PRECISIONS:
        raise ValueError(f"[train] precision {precision!r} is not one of {list(PRECISIONS)}.")
    if precision == "mixed_float16" and not tf.config.list_logical_devices("GPU"):
        raise ValueError(
            "[train] precision = \"mixed_float16\" needs a GPU and none is visible (strategy "
            f"{strategy_name}); use \"mixed_bfloat16\" on a TPU or CPU, or \"float32\"."
        )
    keras.mixed_precision.set_global_policy(precision)
