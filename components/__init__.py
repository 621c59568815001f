"""The stages: one package per stage, each with the stage module the DAG names
(components/<stage>/stage.py: Config, run and one SPEC = StageSpec(...); see
edgepipe.pipeline.spec) and its own helpers beside it.

    ingest/      raw files of any source -> a TFDS-format Examples dataset (Beam)
    statistics/  per-split statistics, the schema and anomalies (Beam)
    train/       a Keras model under tf.distribute
    evaluate/    metrics on the test split and the blessing gates
    quantize/    TFLite variants, each measured on LiteRT, and the one to deploy
    report/      one self-contained HTML page
    push/        a blessed model into the versioned registry
    shared/      helpers several stages use: Beam pipelines, the Examples reader, tf.data input

A stage package never imports another stage's package: what two stages share is in shared/
or in edgepipe.contracts (tests/test_layout.py checks it).
"""
