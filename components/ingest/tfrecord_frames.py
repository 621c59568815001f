"""TFRecord files read without TensorFlow: the frames with their CRCs checked, streamed.

A TFRecord file is a run of frames: uint64 length, uint32 masked CRC-32C of the length, the
data, uint32 masked CRC-32C of the data (crcmod, which Beam's tfrecord extra installs, computes
the CRC). Ingest parses the tf.train.Example records with TFDS's TF-free copy of the proto
(tensorflow_datasets.proto), so reading a TFRecord source never imports TensorFlow (whose
import alone costs about 600 MB). The data of a frame is read in pieces: a length field that
claims more than the file holds costs what the file holds, not what the header says.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import struct
from typing import BinaryIO, Iterator

from edgepipe.contracts.storage import open_binary

HEADER, FOOTER = 12, 4  # uint64 length + uint32 masked CRC of it; uint32 masked CRC of data
PIECE = 1 << 20


@functools.lru_cache(maxsize=1)
def _crc32c():
    import crcmod.predefined

    return crcmod.predefined.mkPredefinedCrcFun("crc-32c")


def _masked_crc(data: bytes) -> int:
    value = _crc32c()(data)
    return (((value >> 15) | (value << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@contextlib.contextmanager
def opened(path: str) -> Iterator[BinaryIO]:
    """The decompressed byte stream of a TFRecord file (a path or URI; `.gz`: GZIP)."""
    with open_binary(path) as raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as stream:
                yield stream
        else:
            yield raw


def _read(stream: BinaryIO, length: int) -> bytes:
    """Up to `length` bytes, fewer at the end of the stream, read in pieces."""
    pieces, wanted = [], length
    while wanted > 0:
        piece = stream.read(min(wanted, PIECE))
        if not piece:
            break
        pieces.append(piece)
        wanted -= len(piece)
    return b"".join(pieces)


def frames(stream: BinaryIO):
    """(index, record bytes) of each record of a TFRecord stream, or (index, (reason, detail))
    for a record whose data fails its CRC (reading goes on) and, last, for a cut or corrupt
    rest of the file (reading stops: where the next record starts is unknown). A GZIP stream
    that cannot be decompressed is such a rest."""
    offset, index = 0, 0
    try:
        while True:
            header = _read(stream, HEADER)
            if not header:
                return
            if len(header) < HEADER:
                yield index, ("truncated_record", f"the file ends inside a record header at "
                              f"byte {offset}; the rest of the file cannot be read")
                return
            (length,), (crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
            if _masked_crc(header[:8]) != crc:
                yield index, ("truncated_record", f"the length of the record at byte {offset} "
                              "fails its CRC; the rest of the file cannot be read")
                return
            body, footer = _read(stream, length), _read(stream, FOOTER)
            if len(body) < length or len(footer) < FOOTER:
                yield index, ("truncated_record", f"the file ends inside the record at byte "
                              f"{offset} (a cut copy?)")
                return
            if _masked_crc(body) != struct.unpack("<I", footer)[0]:
                yield index, ("corrupt_record", f"the data of the record at byte {offset} "
                              "fails its CRC")
            else:
                yield index, body
            offset, index = offset + HEADER + length + FOOTER, index + 1
    except (OSError, EOFError) as error:  # a GZIP stream that is cut or not GZIP at all
        yield index, ("truncated_record", f"the file cannot be decompressed past record "
                      f"{index}: {error}")
