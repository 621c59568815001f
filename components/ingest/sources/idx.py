"""`idx`: the MNIST family's IDX files (gz or plain): one images file and one labels file for
train and for test, and optionally an images file without labels (`unlabeled`). Records are
images [H, W, 1] uint8; the id is "<images file name>:<index>".

The work is cut into ranges of record indices that the pipeline spreads over the workers;
each worker reads (and gunzips) a file pair once and keeps it in memory, so only the range
bounds travel through the runner. A truncated file keeps its complete records; the ones it
lost are rejected one by one (reason truncated_file), so the accounting stays exact. A gzip
stream that is corrupt (bad deflate data, or a CRC that does not match) keeps the records
decompressed before the damage, and the others are rejected as corrupt_file with the byte
offset where the damage was found; after a CRC mismatch no record can be trusted, so all are.
"""

from __future__ import annotations

import gzip
import pathlib
import struct
import zlib

import numpy as np

from edgepipe.components.ingest.sources.common import open_binary, rejection

KIND = "idx"
FIELDS = ("train_images", "train_labels", "test_images", "test_labels", "unlabeled")
REQUIRED = FIELDS[:4]
CHUNK_RECORDS = 2000  # records per chunk handed between workers
IDX_UBYTE = 0x08


def _open_idx(path: str):
    """A binary stream of the IDX content, gunzipped if the file starts with the gzip magic."""
    raw = open_binary(path)
    head = raw.read(2)
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw


def read_idx_header(path: str, kind: str, ndim: int) -> tuple[tuple[int, ...], int]:
    """(dims, header size) of an IDX file of unsigned bytes with `ndim` dimensions."""
    expected = (IDX_UBYTE << 8) | ndim
    try:
        with _open_idx(path) as stream:
            head = stream.read(4 + 4 * ndim)
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: cannot read the IDX {kind} file ({error}).") from error
    magic = struct.unpack(">I", head[:4])[0] if len(head) >= 4 else None
    if magic != expected or len(head) < 4 + 4 * ndim:
        found = "a file too short for a header" if magic is None else f"0x{magic:08x}"
        raise ValueError(
            f"{path}: not an IDX {kind} file: magic number is {found}, expected 0x{expected:08x} "
            f"(unsigned bytes, {ndim} dimension(s)). Point the config at the "
            f"{kind} file (e.g. train-{kind}-idx{ndim}-ubyte.gz)."
        )
    return struct.unpack(f">{ndim}I", head[4:]), 4 + 4 * ndim


# Deflate never compresses better than about 1032:1: a .gz of N bytes cannot hold more.
MAX_DEFLATE_RATIO = 1032


def capacity(path: str, header_size: int, record_size: int) -> int:
    """The most records the file can hold, from its size alone: exact for a plain file, the
    deflate bound for a gzip one. A header declaring more lies (or the file was cut)."""
    with open_binary(path) as stream:
        gzipped = stream.read(2) == b"\x1f\x8b"
        stream.seek(0, 2)
        size = stream.tell()
    body = size * MAX_DEFLATE_RATIO if gzipped else size - header_size
    return max(0, body) // max(1, record_size)


def check_declared(path: str, kind: str, dims: tuple[int, ...], header_size: int) -> None:
    """ValueError when the header declares more records than the file's size can hold: the
    pipeline would otherwise plan (and account for) millions of records that do not exist."""
    most = capacity(path, header_size, int(np.prod(dims[1:])))
    if dims[0] > most:
        raise ValueError(
            f"{path}: the IDX header declares {dims[0]} {kind} of shape {list(dims[1:])}, but a "
            f"file of this size can hold at most {most}: the header is wrong or the file was "
            "cut; fetch it again.")


def read_idx(path: str, kind: str, ndim: int) -> np.ndarray:
    """The whole IDX file as a uint8 array of its declared dims; errors name the file."""
    array, declared, problem, _ = read_idx_available(path, kind, ndim)
    if problem:
        raise ValueError(f"{path}: {problem}.")
    return array


def read_idx_available(path: str, kind: str, ndim: int) -> tuple[np.ndarray, int, str, str]:
    """(the complete records, the count the header declares, why some are missing or "", and
    the rejection reason for them: "truncated_file" or "corrupt_file").

    A truncated or corrupt gzip, or a body shorter than the header says, still yields every
    record that can be trusted: the others are quarantined by the caller, not silently
    dropped. Only what the header declares is read: more data after it (a gzip bomb: a
    header for 100 images, then 1 GiB of zeros) is refused, naming the file.
    """
    dims, header_size = read_idx_header(path, kind, ndim)
    check_declared(path, kind, dims, header_size)
    record_size = int(np.prod(dims[1:]))
    expected = header_size + dims[0] * record_size
    with open_binary(path) as stream:
        gzipped = stream.read(2) == b"\x1f\x8b"
        stream.seek(0)
        # a plain file: one byte past the declared end tells whether there is more
        raw = stream.read() if gzipped else stream.read(expected + 1)
    problem, reason = "", "truncated_file"
    if gzipped:
        raw, problem, reason = gunzip_available(raw, expected)
    if len(raw) > expected or reason == TRAILING:
        raise ValueError(
            f"{path}: the IDX header declares {dims[0]} {kind} ({expected} bytes with the "
            "header) but the file holds more data after them: trailing data is refused (a "
            "file concatenated with another, or a decompression bomb); fetch the file again.")
    body = raw[header_size:]
    complete = min(len(body) // record_size, dims[0])
    if complete < dims[0] and not problem:
        problem = (f"the header declares {dims[0]} records but the body holds only "
                   f"{complete} complete ones")
    array = np.frombuffer(body[:complete * record_size], dtype=np.uint8)
    return array.reshape((complete, *dims[1:])), dims[0], problem, reason


GZIP_BLOCK = 4096  # compressed bytes fed at a time: the precision of a reported offset
TRAILING = "trailing_data"  # gunzip_available's reason for data after what was declared


def gunzip_available(raw: bytes, limit: int) -> tuple[bytes, str, str]:
    """(what can be trusted of a gzip stream, at most limit + 1 bytes of it, the problem or
    "", the rejection reason; TRAILING when there is more than `limit` bytes).

    zlib keeps what it decompressed of a cut stream (truncated_file). Bad deflate data stops
    decompression at the block where it is found (corrupt_file, with that byte offset); a CRC
    mismatch at the end means some bytes are wrong somewhere, so nothing is kept. Only the
    first limit + 1 bytes are kept: the rest of a bomb is inflated (to find damage) and
    counted, never held, so it costs time in proportion to the compressed size and no more
    memory than the header declares. Another gzip member (or anything but zero padding) after
    the first is trailing data too.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pieces, size, offset = [], 0, 0
    for offset in range(0, len(raw), GZIP_BLOCK):
        data = raw[offset:offset + GZIP_BLOCK]
        while data and not inflater.eof:
            try:  # at most 1 MiB of output a call: a bomb's zeros are counted, not kept
                piece = inflater.decompress(data, 1 << 20)
            except zlib.error as error:
                kept = b"" if "check" in str(error) else b"".join(pieces)
                where = ("the CRC check at the end of the stream failed, so no record can be "
                         "trusted" if not kept else "the records after it are lost")
                return kept, (f"the gzip stream is corrupt at compressed byte {offset} ({error}): "
                              f"{where}; fetch the file again"), "corrupt_file"
            if size <= limit:
                pieces.append(piece[:limit + 1 - size])
            size += len(piece)
            data = inflater.unconsumed_tail
        if inflater.eof:
            break
    after = inflater.unused_data + raw[offset + GZIP_BLOCK:] if inflater.eof else b""
    if size > limit or after.strip(b"\0"):
        return b"".join(pieces), "", TRAILING
    if not inflater.eof:
        return b"".join(pieces), "the gzip stream is truncated", "truncated_file"
    return b"".join(pieces), "", "truncated_file"


def file_pairs(config) -> dict[str, tuple[str, str | None]]:
    """(images, labels) per origin; the unlabeled origin is an images file alone."""
    pairs = {
        "train": (config.train_images, config.train_labels),
        "test": (config.test_images, config.test_labels),
    }
    if config.unlabeled:
        pairs["unlabeled"] = (config.unlabeled, None)
    return pairs


def files(config) -> dict[str, list[str]]:
    return {origin: [path for path in pair if path] for origin, pair in file_pairs(config).items()}


def check_headers(config) -> tuple[dict[str, int], tuple[int, int, int]]:
    """Validate every header before the pipeline starts: (records per file pair, image shape)."""
    counts, shapes = {}, {}
    for origin, (images_path, labels_path) in file_pairs(config).items():
        image_dims, image_header = read_idx_header(images_path, "images", 3)
        check_declared(images_path, "images", image_dims, image_header)
        label_dims, label_header = (read_idx_header(labels_path, "labels", 1) if labels_path
                                    else (image_dims, 0))
        if labels_path:
            check_declared(labels_path, "labels", label_dims, label_header)
        if image_dims[0] != label_dims[0]:
            raise ValueError(
                f"{images_path} holds {image_dims[0]} images but {labels_path} holds "
                f"{label_dims[0]} labels: each image needs exactly one label."
            )
        counts[origin] = image_dims[0]
        shapes[origin] = (image_dims[1], image_dims[2], 1)
    for origin, shape in shapes.items():
        if shape != shapes["train"]:
            raise ValueError(f"train images are {shapes['train']} but {origin} images "
                             f"({file_pairs(config)[origin][0]}) are {shape}.")
    return counts, shapes["train"]


def describe(config) -> dict:
    if not config.class_names:
        raise ValueError("[ingest] class_names: the idx source needs the class names in "
                         "label-index order (IDX files hold only label numbers).")
    counts, shape = check_headers(config)
    check_truncation(config, counts)
    return {"feature": "image", "shape": list(shape), "class_names": list(config.class_names)}


def check_truncation(config, counts: dict[str, int]) -> None:
    """Read each file pair once (workers reuse it in this process) and fail now, naming the
    file, when more records are lost to truncation than max_quarantine_fraction allows:
    quarantining them one by one would cost time in proportion to what the header claims."""
    lost = {}
    for origin, (images_path, labels_path) in file_pairs(config).items():
        images, labels, problem, reason = _arrays(images_path, labels_path)
        complete = len(images) if labels is None else min(len(images), len(labels))
        if complete < counts[origin]:
            lost[origin] = (counts[origin] - complete, problem, reason)
    total = sum(counts.values())
    missing = sum(count for count, _, _ in lost.values())
    if total and missing / total > config.max_quarantine_fraction:
        details = "; ".join(f"{origin}: {count} lost, {problem}"
                            for origin, (count, problem, _) in lost.items())
        reasons = sorted({reason for _, _, reason in lost.values()})
        raise ValueError(
            f"{missing} of {total} records ({missing / total:.1%}) would be rejected as "
            f"{' / '.join(reasons)}, more than max_quarantine_fraction="
            f"{config.max_quarantine_fraction} ({details}). Fetch the files again, or raise "
            "max_quarantine_fraction to keep the complete records.")


def read_units(config, origin: str) -> list:
    """Ranges of record indices: only their bounds travel between workers."""
    images_path, labels_path = file_pairs(config)[origin]
    (declared, *_), _ = read_idx_header(images_path, "images", 3)
    return [(origin, images_path, labels_path, start, min(start + CHUNK_RECORDS, declared))
            for start in range(0, declared, CHUNK_RECORDS)]


def read_unit(unit, config, info):
    yield unit


_ARRAYS: dict = {}


def _arrays(images_path: str, labels_path: str):
    """(images, labels, problem, rejection reason) of a file pair (labels None for the
    unlabeled images file), read once per worker process: chunks of the train, test and
    unlabeled files arrive interleaved, so all of them stay in memory."""
    key = (images_path, labels_path)
    if key not in _ARRAYS:
        if len(_ARRAYS) >= 3:  # a long-lived worker that moved on to other files
            _ARRAYS.clear()
        images, _, image_problem, image_reason = read_idx_available(images_path, "images", 3)
        labels, label_problem, label_reason = None, "", ""
        if labels_path:  # the unlabeled origin has none
            labels, _, label_problem, label_reason = read_idx_available(labels_path, "labels", 1)
        problem = "; ".join(f"{path}: {problem}" for path, problem in
                            ((images_path, image_problem), (labels_path, label_problem))
                            if problem)
        reason = "corrupt_file" if "corrupt_file" in (image_reason, label_reason) \
            else "truncated_file"
        _ARRAYS[key] = (images, labels, problem, reason)
    return _ARRAYS[key]


def expand(chunk, info):
    """Records start..stop of a file pair; those a truncated file lost become rejections."""
    origin, images_path, labels_path, start, stop = chunk
    images, labels, problem, reason = _arrays(images_path, labels_path)
    images_name = pathlib.PurePosixPath(images_path).name
    complete = len(images) if labels is None else min(len(images), len(labels))
    for index in range(start, stop):
        record_id, source = f"{images_name}:{index}", f"{labels_path or images_path}:{index}"
        if index >= complete:  # each lost record is accounted for
            yield rejection(record_id, source, origin, reason, problem)
            continue
        yield {"id": record_id, "source": source, "origin": origin,
               "image": images[index][..., np.newaxis],
               "label": None if labels is None else int(labels[index])}
