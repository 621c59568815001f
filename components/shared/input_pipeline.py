"""The tf.data input pipeline: (model input, label) batches of a split, for every stage that
fits a model (train, and quantize's QAT and pruning fine-tuning).

Inputs follow the model's model.json (edgepipe.contracts.model_inputs states the rules in
numpy; the sequence padding rule is restated here as TensorFlow ops): float32 images and
sequences, int32 token ids of texts. Decoded examples are cached (images as uint8, a quarter
of float32's memory, cast per batch), so only the first epoch pays for decoding.
benchmarks/input_pipeline.py measures this against in-memory arrays. TensorFlow is passed in
by the caller, which imports it lazily.
"""

from __future__ import annotations

from typing import Any, Sequence

from edgepipe.components.shared import audio_augment, examples_io
from edgepipe.contracts import model_inputs


def pad_sequence_tensor(tf, series, length: int, padding: str = "pre",
                        padding_value: float | Sequence[float] = 0.0):
    """model_inputs.pad_sequences' rule for one [steps, C] tensor inside a tf.data map."""
    model_inputs.check_padding(padding)
    series = tf.convert_to_tensor(series, tf.float32)
    kept = series[-length:] if padding == "pre" else series[:length]
    missing = length - tf.shape(kept)[0]
    fill = tf.broadcast_to(tf.constant(padding_value, tf.float32), [missing, tf.shape(kept)[1]])
    padded = tf.concat([fill, kept] if padding == "pre" else [kept, fill], axis=0)
    return tf.ensure_shape(padded, [length, series.shape[-1]])


AUGMENTS = ("none", "translate", "audio")  # [train] augment: what the training batches get


def translate_batch(tf, images, pixels: int):
    """Every image of a float32 [B, H, W, C] batch shifted by its own random whole number of
    pixels, up to `pixels` each way on each axis, the edge filled with 0 (the raw background):
    zero padding then a random crop, vectorised over the batch (no per-image map)."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [pixels, pixels], [pixels, pixels], [0, 0]])
    rows = tf.random.uniform([batch], 0, 2 * pixels + 1, dtype=tf.int32)
    columns = tf.random.uniform([batch], 0, 2 * pixels + 1, dtype=tf.int32)
    shifted = tf.gather(padded, rows[:, None] + tf.range(height)[None, :], axis=1, batch_dims=1)
    return tf.gather(shifted, columns[:, None] + tf.range(width)[None, :], axis=2,
                     batch_dims=1)


def training_augments(examples, model_info: dict[str, Any], config) -> dict[str, Any]:
    """The augmentation arguments of `dataset` for the training split, from [train]; an
    augment that does not fit the input kind is a config error saying what does."""
    kind = {"translate": "image", "audio": "audio"}.get(config.augment)
    if kind and model_info["input_feature"] != kind:
        raise ValueError(f"[train] augment = {config.augment!r} augments {kind} inputs, but "
                         f"the examples hold {model_info['input_feature']!r}; set augment = "
                         "\"none\"" + (" or \"audio\"" if model_info["input_feature"] == "audio"
                                      else "") + ".")
    return {"augment": config.augment, "augment_pixels": config.augment_pixels,
            "boxes_augment": config.boxes_augment,
            "audio": (audio_augment.arguments(examples, model_info, config) if kind == "audio"
                      else None)}


def dataset(tf, examples, split: str, model_info: dict[str, Any], batch_size: int,
            seed: int | None = None, shuffle_buffer: int = 0, repeat: bool = False,
            input_context=None, drop_remainder: bool = False, augment: str = "none",
            augment_pixels: int = 2, boxes_augment: bool = False,
            audio: dict[str, Any] | None = None):
    """(model input, label) batches of one split of an Examples artifact.

    `shuffle_buffer` > 0 shuffles with `seed` (reshuffled every epoch); `repeat` repeats
    forever (fit then counts steps, and every batch is full). With an InputContext of several
    input pipelines (multi-worker training) each pipeline reads its own shard; without one
    the dataset is sharded by element, so Keras can split it among replicas. `augment`
    "translate" shifts each image by up to `augment_pixels` (translate_batch): only for
    image inputs, and only the caller's training split should ask for it. Boxes (task
    detection) go through components/shared/detection_input.py: (image, anchor targets),
    `boxes_augment` flipping, scaling and shifting images with their boxes. "audio" shifts
    and mixes noise into raw-audio clips (components/shared/audio_augment.py) with the
    `audio` arguments {"noise", "shift", "level", "probability"}.
    """
    if examples_io.label_feature(examples) == "objects":
        from edgepipe.components.shared import detection_input

        return _prefetched(tf, detection_input.dataset(
            tf, examples, split, model_info, batch_size, seed, shuffle_buffer, repeat,
            input_context, drop_remainder, boxes_augment), input_context)
    data = _elements(tf, examples, split, model_info, input_context).cache()
    if shuffle_buffer:
        data = data.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        data = data.repeat()
        drop_remainder = True
    data = data.batch(batch_size, drop_remainder=drop_remainder)
    if augment not in AUGMENTS:
        raise ValueError(f"augment {augment!r}: expected one of {list(AUGMENTS)}")
    translate = augment == "translate" and model_info["input_feature"] == "image"
    sound = augment == "audio" and model_info["input_feature"] == "audio"

    def cast(values, labels):  # per batch: a quarter of the memory traffic of float32 caches
        values = tf.cast(values, tf.float32)
        if sound:
            return audio_augment.augment_batch(tf, values, **audio), labels
        return (translate_batch(tf, values, augment_pixels) if translate else values), labels

    if model_info["input_feature"] != "text":  # token ids stay int32
        data = data.map(cast, num_parallel_calls=tf.data.AUTOTUNE)
    return _prefetched(tf, data, input_context)


def _prefetched(tf, data, input_context):
    """Prefetch; without an input context (one pipeline for all replicas) tf.distribute
    shards by data, not by the files a TFDS split happens to have."""
    data = data.prefetch(tf.data.AUTOTUNE)
    if input_context is None:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        data = data.with_options(options)
    return data


# Image splits up to this size (decoded, uint8) are read into memory at once (the cache
# holds them there anyway); larger ones, or images of varying size, stream from the shards.
IN_MEMORY_IMAGE_BYTES = 1024**3


def _image_bytes(examples, split: str) -> float:
    size = float(examples_io.split_size(examples, split))
    for dimension in examples_io.input_shape(examples):
        size *= float(dimension) if dimension else float("inf")
    return size


def _elements(tf, examples, split: str, model_info: dict[str, Any], input_context):
    """Unbatched (model input, label or targets) pairs of this input pipeline's shard: uint8 images,
    padded float32 sequences, int32 token ids (texts are small: tokenised in Python by the one
    tokenizer)."""
    feature = model_info["input_feature"]
    label = examples_io.label_feature(examples)  # class index, or regression targets
    if feature == "text":
        split_data = examples_io.load_numpy(examples, split)
        data = tf.data.Dataset.from_tensor_slices(
            (model_inputs.prepare(model_info, split_data["text"]), split_data[label]))
    elif feature == "image" and _image_bytes(examples, split) <= IN_MEMORY_IMAGE_BYTES:
        # Decoded in one batched read (the same records in the same order as as_dataset):
        # decoding them one by one while the first epoch trains took ~5 s more on full
        # Fashion-MNIST. The arrays are what the cache below would hold anyway.
        split_data = examples_io.load_numpy(examples, split)
        data = tf.data.Dataset.from_tensor_slices(
            {"image": split_data["image"], label: split_data[label]})
    else:
        data = examples_io.as_dataset(examples, split)
    if input_context is not None and input_context.num_input_pipelines > 1:
        data = data.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if feature == "text":
        return data
    if feature == "sequence":
        length = int(model_info["input_shape"][0])
        padding = model_info.get("padding", "pre")
        padding_value = model_info.get("padding_value", 0.0)

        def element(record):
            return (pad_sequence_tensor(tf, record["sequence"], length, padding, padding_value),
                    record[label])
    elif model_info.get("rgb_to_gray"):  # an RGB-input model trained on gray images
        def element(record):
            return tf.image.grayscale_to_rgb(record[feature]), record[label]
    else:
        def element(record):
            return record[feature], record[label]
    return data.map(element, num_parallel_calls=tf.data.AUTOTUNE)


# ---------------------------------------------------------------- semi-supervised training

AUGMENTATIONS = ("none", "shift", "flip_shift", "flip_shift_cutout")
SHIFT_PIXELS = 2  # "shift" moves an image by up to this many pixels each way
CUTOUT_FRACTION = 0.3  # the side of the square "cutout" blanks, as a share of the image's


def augment_image(tf, image, augmentation: str):
    """A randomly augmented copy of one [H, W, C] image: "shift" moves it by up to
    SHIFT_PIXELS (zero fill), "flip_shift" also flips it left-right at random,
    "flip_shift_cutout" also blanks a random square (Cutout); "none" returns it unchanged."""
    if augmentation == "none":
        return image
    if augmentation != "shift":
        image = tf.image.random_flip_left_right(image)
    height, width, channels = image.shape
    padded = tf.pad(image, [[SHIFT_PIXELS, SHIFT_PIXELS], [SHIFT_PIXELS, SHIFT_PIXELS], [0, 0]])
    image = tf.image.random_crop(padded, [height, width, channels])
    if augmentation == "flip_shift_cutout":
        size = max(1, round(CUTOUT_FRACTION * min(height, width)))
        top = tf.random.uniform([], -(size // 2), height - size // 2, dtype=tf.int32)
        left = tf.random.uniform([], -(size // 2), width - size // 2, dtype=tf.int32)
        rows = tf.range(height)[:, None, None]
        columns = tf.range(width)[None, :, None]
        inside = (rows >= top) & (rows < top + size) & (columns >= left) & (columns < left + size)
        image = tf.where(inside, tf.zeros_like(image), image)
    return image


def weighted_dataset(tf, examples, model_info: dict[str, Any], batch_size: int, pseudo=None,
                     augmentation: str = "none", seed: int | None = None,
                     shuffle_buffer: int = 10000, input_context=None,
                     labeled_share: float | None = None):
    """Endless (input, label, weight) batches of the train split (weight 1), mixed with the
    unlabeled split's pseudo-labelled records: `pseudo` = (labels, weights) arrays in the
    split's file order, weight 0 leaving a record out. The two are shuffled apart and drawn
    at random, a labelled one with probability `labeled_share` (default: the labelled
    share of all the examples), so every batch mixes them; images are augmented per
    example. Each input pipeline of several reads its own shard."""
    def shard(data):
        if input_context is not None and input_context.num_input_pipelines > 1:
            return data.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return data

    labelled = shard(_elements(tf, examples, "train", model_info, None)).map(
        lambda values, label: (values, label, tf.constant(1.0)))
    parts, sizes = [labelled], [examples_io.split_size(examples, "train")]
    if pseudo is not None and int((pseudo[1] > 0).sum()):
        labels, weights = pseudo
        chosen = tf.data.Dataset.zip((
            _elements(tf, examples, "unlabeled", model_info, None),
            tf.data.Dataset.from_tensor_slices((labels.astype("int64"),
                                                weights.astype("float32"))),
        )).filter(lambda element, pseudo_label: pseudo_label[1] > 0)
        parts.append(shard(chosen.map(lambda element, pseudo_label: (
            element[0], pseudo_label[0], pseudo_label[1]))))
        sizes.append(int((pseudo[1] > 0).sum()))
    parts = [part.cache().shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
             .repeat() for part in parts]
    share = sizes[0] / sum(sizes) if labeled_share is None else labeled_share
    data = parts[0] if len(parts) == 1 else tf.data.Dataset.sample_from_datasets(
        parts, weights=[share, 1.0 - share], seed=seed)
    if model_info["input_feature"] == "image" and augmentation != "none":
        data = data.map(lambda values, label, weight: (
            augment_image(tf, values, augmentation), label, weight),
            num_parallel_calls=tf.data.AUTOTUNE)
    data = data.batch(batch_size, drop_remainder=True)
    if model_info["input_feature"] != "text":
        data = data.map(lambda values, labels, weights: (
            tf.cast(values, tf.float32), labels, weights), num_parallel_calls=tf.data.AUTOTUNE)
    return _prefetched(tf, data, input_context)
