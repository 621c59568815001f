"""Storing standard TFLite metadata in a .tflite file and reading it back.

The storage rules of tflite-support's / MediaPipe's `MetadataPopulator`: the `ModelMetadata`
flatbuffer (file identifier "M001") goes into a model buffer that the model's `metadata` list
names "TFLITE_METADATA" (an existing entry is replaced; other entries such as
"edgepipe_metadata", "min_runtime_version" and "CONVERSION_METADATA" are kept); the associated
files (labels, vocabulary) are appended to the file as an uncompressed zip, each under its
basename; `min_parser_version` is computed from the schema members used (a port of
metadata_version.cc). Two differences from the official populator, on purpose: the zip has
fixed timestamps and sorted names, so the output is byte-for-byte reproducible, and packing
again replaces the packed files instead of appending more.

Re-packing the model flatbuffer drops anything appended to the file: write any other metadata
entry first (the quantize stage's JSON entry, say), this last. The metadata classes are flatc's bindings of the
vendored schema (metadata_schema_generated.py); the model classes are ai_edge_litert's.
"""

from __future__ import annotations

import io
import zipfile
from typing import Mapping

import flatbuffers
import numpy as np

from edgepipe.components.tflite_metadata import metadata_schema_generated as fb

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"


def pack(model, metadata, files: Mapping[str, bytes]) -> bytes:
    """The .tflite bytes of `model` (a ModelT) holding `metadata` (a ModelMetadataT), with
    `files` appended as a stored zip."""
    for associated in associated_files(metadata):
        name = text(associated.name)
        associated.name = name.replace("\\", "/").rsplit("/", 1)[-1]
        if associated.name not in files:
            raise ValueError(f"the metadata names {associated.name!r}, which is not packed.")
    metadata.minParserVersion = None
    metadata.minParserVersion = min_parser_version(finish(metadata, METADATA_IDENTIFIER))
    _set_metadata_buffer(model, finish(metadata, METADATA_IDENTIFIER))
    return _append_zip(finish(model, MODEL_IDENTIFIER), files)


def read(model_content: bytes):
    """(ModelMetadataT or None, {packed file name: bytes}) of a .tflite file."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_content, 0)
    metadata = None
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name() == METADATA_NAME.encode():
            data = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            if not fb.ModelMetadata.ModelMetadataBufferHasIdentifier(data, 0):
                raise ValueError("the TFLITE_METADATA buffer is not an M001 flatbuffer.")
            metadata = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAs(data, 0))
    files = {}
    if zipfile.is_zipfile(io.BytesIO(model_content)):
        with zipfile.ZipFile(io.BytesIO(model_content)) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    return metadata, files


def read_model(model_content: bytes):
    """The ModelT of a .tflite file the writer can re-pack (inline buffers, one subgraph)."""
    from ai_edge_litert import schema_py_generated as schema

    if not schema.Model.ModelBufferHasIdentifier(model_content, 0):
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier).")
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model_content, 0))
    if any(buffer.offset for buffer in model.buffers or []):
        raise ValueError("the model keeps buffers outside the flatbuffer (a >2 GB model); "
                         "the metadata writer re-packs the flatbuffer and supports only inline "
                         "buffers.")
    if len(model.subgraphs) != 1:
        raise ValueError(f"the model has {len(model.subgraphs)} subgraphs; the metadata "
                         "schema describes exactly one.")
    return model


def text(value) -> str | None:
    """A string field of the object API: bytes after reading, str when set by us."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def finish(table, identifier: bytes) -> bytes:
    builder = flatbuffers.Builder(0)
    builder.Finish(table.Pack(builder), identifier)
    return bytes(builder.Output())


def associated_files(metadata) -> list:
    """Every AssociatedFileT the metadata names (model, subgraph, tensors, process units)."""
    found = list(metadata.associatedFiles or [])
    for graph in metadata.subgraphMetadata or []:
        found += graph.associatedFiles or []
        units = list(graph.inputProcessUnits or []) + list(graph.outputProcessUnits or [])
        for tensor in (graph.inputTensorMetadata or []) + (graph.outputTensorMetadata or []):
            found += tensor.associatedFiles or []
            units += tensor.processUnits or []
        for unit in units:
            for field in ("vocabFile", "sentencePieceModel"):
                found += getattr(unit.options, field, None) or []
    return found


# --- min_parser_version: a port of tflite-support / MediaPipe metadata_version.cc ----------

# The schema version that introduced each member used after 1.0.0.
_VOCABULARY_FILE = (1, 0, 1)
_PROCESS_UNITS_IN_SUBGRAPH = (1, 1, 0)
_BERT_OR_SENTENCE_PIECE = (1, 1, 0)
_TENSOR_GROUPS = (1, 2, 0)
_REGEX_TOKENIZER = (1, 2, 1)
_AUDIO_PROPERTIES = (1, 3, 0)
_SCANN_INDEX_FILE = (1, 4, 0)
_ASSOCIATED_FILE_VERSION = (1, 4, 1)
_CUSTOM_METADATA = (1, 5, 0)


def min_parser_version(metadata_buffer: bytes) -> str:
    """The oldest metadata parser that can read `metadata_buffer` ("1.2.1", say).

    Like the C++ original it reads the packed flatbuffer: a field counts when it is present,
    even as an empty vector.
    """
    root = fb.ModelMetadata.GetRootAs(metadata_buffer, 0)
    found = [(1, 0, 0)]
    for index in range(root.SubgraphMetadataLength()):
        graph = root.SubgraphMetadata(index)
        for tensor in _items(graph, "InputTensorMetadata") + _items(graph, "OutputTensorMetadata"):
            found += _file_versions(_items(tensor, "AssociatedFiles"))
            found += _process_unit_versions(_items(tensor, "ProcessUnits"))
            content = tensor.Content()
            if content and content.ContentPropertiesType() == fb.ContentProperties.AudioProperties:
                found.append(_AUDIO_PROPERTIES)
        found += _file_versions(_items(graph, "AssociatedFiles"))
        for field in ("InputProcessUnits", "OutputProcessUnits"):
            if not getattr(graph, f"{field}IsNone")():
                found.append(_PROCESS_UNITS_IN_SUBGRAPH)
                found += _process_unit_versions(_items(graph, field))
        if not graph.InputTensorGroupsIsNone() or not graph.OutputTensorGroupsIsNone():
            found.append(_TENSOR_GROUPS)
        if not graph.CustomMetadataIsNone():
            found.append(_CUSTOM_METADATA)
    found += _file_versions(_items(root, "AssociatedFiles"))
    return ".".join(str(part) for part in max(found))


def _items(table, field: str) -> list:
    return [getattr(table, field)(index) for index in range(getattr(table, f"{field}Length")())]


def _file_versions(files) -> list[tuple[int, int, int]]:
    found = []
    for file in files:
        if file.Type() == fb.AssociatedFileType.VOCABULARY:
            found.append(_VOCABULARY_FILE)
        if file.Type() == fb.AssociatedFileType.SCANN_INDEX_FILE:
            found.append(_SCANN_INDEX_FILE)
        if file.Version() is not None:
            found.append(_ASSOCIATED_FILE_VERSION)
    return found


def _process_unit_versions(units) -> list[tuple[int, int, int]]:
    versions = {
        fb.ProcessUnitOptions.BertTokenizerOptions: _BERT_OR_SENTENCE_PIECE,
        fb.ProcessUnitOptions.SentencePieceTokenizerOptions: _BERT_OR_SENTENCE_PIECE,
        fb.ProcessUnitOptions.RegexTokenizerOptions: _REGEX_TOKENIZER,
    }
    return [versions[unit.OptionsType()] for unit in units if unit.OptionsType() in versions]


# --- the model flatbuffer and the appended zip -----------------------------------------------

def _set_metadata_buffer(model, metadata_buffer: bytes) -> None:
    from ai_edge_litert import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata_buffer, dtype=np.uint8)
    model.metadata = list(model.metadata or [])
    for entry in model.metadata:
        if text(entry.name) == METADATA_NAME:
            model.buffers[entry.buffer] = buffer
            return
    model.buffers = list(model.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)


def _append_zip(model_bytes: bytes, files: Mapping[str, bytes]) -> bytes:
    """The model followed by an uncompressed zip of `files`, as MetadataPopulator writes it.

    MediaPipe's reader (minizip) accepts stored entries only; fixed timestamps keep the
    output byte-for-byte reproducible.
    """
    stream = io.BytesIO(model_bytes)
    stream.seek(0, io.SEEK_END)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(files):
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_STORED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, files[name])
    return stream.getvalue()
