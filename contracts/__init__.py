"""What the stages and the model server both use, so the two cannot disagree.

    artifacts.py     the files of every artifact kind: one reader and one writer per file
    model_inputs.py  raw examples -> a model's input batch (padding, dtypes, tokenising)
    text_tokens.py   the one tokenizer of text models
    litert.py        feeding a .tflite model and reading its answer, as a device does
    registry.py      the versioned model registry: layout, atomic publish, reads
    checksums.py     checksums.json: the SHA-256 of every file of a registry version
    storage.py       the file layer: local paths and gs:// / s3:// URIs through one set of calls
    gcs.py           how storage reaches gs:// (gcsfs options, credentials, emulators)

It imports nothing from edgepipe.pipeline, edgepipe.components, edgepipe.models or
edgepipe.serving, and no TensorFlow: standard library and numpy only
(tests/test_layout.py checks both).
"""
