"""The files of every artifact kind: their names, and one reader and one writer per file.

Stages, the report, push and the model server name artifact files and read and write them only
through this package, so a file name and a format have one definition and every reader is
equally strict: a missing or unreadable file is an ArtifactFileError that names it and the
stage that writes it. One module per artifact kind:

    files.py       what they share: paths or URIs, JSON and CSV written atomically, the error
    examples.py    Examples      the TFDS dataset (dataset_info.json...), quarantine/records.jsonl
    statistics.py  Statistics    statistics.json, anomalies.json, statistics.pb; Schema schema.pbtxt
    model.py       Model         model.json, history.json, model.keras, saved_model/, logs/
    evaluation.py  Evaluation    metrics.json, confusion.json, singled_out.json,
                                 predictions.csv, BLESSED or NOT_BLESSED
    tflite.py      TFLiteModels  <variant>.tflite, variants.json, deployable.json
    tuning.py      Tuning        tuning.json
    report.py      Report        report.html, summary.json
    pushed.py      PushedModel   pushed.json

The files about unlabelled data (unlabeled_sources.jsonl, pseudo_labels.json,
labeling_queue.csv) are in edgepipe.contracts.unlabeled_artifacts, a registry version's
(model.tflite, labels.txt, metadata.json) in edgepipe.contracts.registry. Every public name is
available here too (`artifacts.read_model_info`, `artifacts.KERAS_MODEL`). Standard library
only: the serving image reads model.json through here too.
"""

from edgepipe.contracts.artifacts.files import (WRITERS, ArtifactFileError, PathLike, at,  # noqa: F401
                                                read_json, text, write_csv, write_json)
from edgepipe.contracts.artifacts.examples import (DATASET_NAME, DATASET_INFO, QUARANTINE,
                                                   read_quarantine)  # noqa: F401
from edgepipe.contracts.artifacts.statistics import (STATISTICS, ANOMALIES, STATISTICS_PROTO,
                                                     SCHEMA, read_statistics, write_statistics,
                                                     read_anomalies, write_anomalies)  # noqa: F401
from edgepipe.contracts.artifacts.model import (MODEL_INFO, HISTORY, KERAS_MODEL, SAVED_MODEL,
                                                LOGS, read_model_info, write_model_info,
                                                read_history, write_history)  # noqa: F401
from edgepipe.contracts.artifacts.evaluation import (METRICS, CONFUSION, SINGLED_OUT, PREDICTIONS,
                                                     BLESSED, NOT_BLESSED, Blessing,
                                                     write_evaluation, read_metrics,
                                                     write_detection_evaluation,
                                                     write_centroid_evaluation,
                                                     write_regression_evaluation,
                                                     read_confusion, read_singled_out,
                                                     write_blessing, read_blessing,
                                                     STREAMING, write_streaming,
                                                     read_streaming)  # noqa: F401
from edgepipe.contracts.artifacts.tflite import (DEPLOYABLE, VARIANTS,  # noqa: F401
                                                 read_deployable, read_variants, variant_file,
                                                 write_deployable, write_variants)
from edgepipe.contracts.artifacts.tuning import (TRIAL_FIELDS, TUNING, read_tuning,  # noqa: F401
                                                 write_tuning)
from edgepipe.contracts.artifacts.report import (REPORT_HTML, REPORT_SUMMARY, write_report_summary,
                                                 read_report_summary)  # noqa: F401
from edgepipe.contracts.artifacts.pushed import (PUSHED, write_pushed, read_pushed)  # noqa: F401
