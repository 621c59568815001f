"""The tasks edgepipe trains for, each defined in one place.

A task says what a label is, which losses fit it, which metric ranks models (and whether
higher or lower is better), how the evaluate gates and the deploy policy compare that metric,
what the model's serving signature returns and how the server answers. Stages ask the task
(`tasks.get(name)`); the pieces of a stage that differ per task live beside the stage in a
module named after the task (components/evaluate/regression.py, ...), found through a
table keyed by the task's name, never through `if task == ...` branches.

Neutral: stages and the server both read it; it imports no TensorFlow. Adding a task: see
docs/architecture.md, "Add a task".
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str  # the key in metrics.json, the run summary and variants.json
    higher_is_better: bool
    description: str
    number_format: str = ".4g"  # how reasons and reports print it

    def format(self, value: float) -> str:
        return format(value, self.number_format)

    def better(self, candidate: float, reference: float) -> bool:
        return candidate > reference if self.higher_is_better else candidate < reference

    def worsening(self, value: float, reference: float) -> float:
        """How much worse `value` is than `reference`, in the unit the gates use for this
        metric: percentage points for a share (accuracy), a fraction of the reference for an
        error (MAE); negative when it is better."""
        if self.higher_is_better:
            return 100.0 * (reference - value)
        return (value - reference) / reference if reference else float(value > reference)

    @property
    def worsening_unit(self) -> str:
        return "points" if self.higher_is_better else "fraction"

    def describe_worsening(self, amount: float) -> str:
        if self.higher_is_better:
            return (f"{amount:.1f} points below" if amount > 0 else
                    f"{-amount:.1f} points above" if amount < 0 else "equal to")
        return (f"{amount:.1%} above" if amount > 0 else
                f"{-amount:.1%} below" if amount < 0 else "equal to")


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    # What a label is: "class" (an index into class_names), "target" (float32 values, one
    # per target column, in the units of the raw data) or "boxes" (a variable-length list of
    # boxes, each with a class: the TFDS `objects` sequence of bbox and label).
    label: str
    # The Examples feature holding the label, and the serving signature's output key.
    label_feature: str
    output: str
    losses: tuple[str, ...]  # [train] loss values this task accepts; the first is the default
    primary: Metric          # what the gates, the deploy policy and the report headline use
    metrics: tuple[Metric, ...]  # every metric evaluate writes into the run summary
    # The standard TFLite metadata of the output: "class_scores" (labels file attached),
    # "values" (one float per target, named in the metadata), "detections" (the four outputs
    # of TFLite_Detection_PostProcess: locations, classes, scores, count; labels attached) or
    # "next_character_logits" (generation: logits over the character vocabulary, one step at
    # a time).
    metadata_output: str

    @property
    def default_loss(self) -> str:
        return self.losses[0]


ACCURACY = Metric("accuracy", True, "share of test examples whose most probable class is right",
                  ".3f")

CLASSIFICATION = Task(
    name="classification", label="class", label_feature="label", output="probabilities",
    losses=("crossentropy",), primary=ACCURACY, metrics=(ACCURACY,),
    metadata_output="class_scores")

MAE = Metric("mae", False, "mean absolute error, in the target's units")
RMSE = Metric("rmse", False, "root mean squared error, in the target's units")
R2 = Metric("r2", True, "coefficient of determination (1 - SSE/SST; 1 is perfect, 0 is the "
            "mean's prediction)")

REGRESSION = Task(
    name="regression", label="target", label_feature="target", output="values",
    losses=("mse", "huber"), primary=MAE, metrics=(MAE, RMSE, R2), metadata_output="values")

MAP_50 = Metric("map_50", True, "COCO mean average precision at IoU 0.5 over the classes",
                 ".3f")
MAP_50_95 = Metric("map_50_95", True, "COCO mean average precision averaged over IoU 0.5, "
                   "0.55, ..., 0.95", ".3f")

DETECTION = Task(
    name="detection", label="boxes", label_feature="objects", output="detections",
    losses=("detection",), primary=MAP_50, metrics=(MAP_50, MAP_50_95),
    metadata_output="detections")

CENTROID_F1 = Metric("centroid_f1", True, "F1 of centroid precision and recall: a predicted "
                     "centroid is right when it lies within one grid cell of the centre of a "
                     "true box of its class (each box matched once)", ".3f")
CENTROID_PRECISION = Metric("centroid_precision", True, "share of predicted centroids that "
                            "match a true box centre of their class", ".3f")
CENTROID_RECALL = Metric("centroid_recall", True, "share of true boxes whose centre a predicted "
                         "centroid of their class matches", ".3f")

# Detection by centroids (`[train] model = "fomo"`): the detection task's data (boxes), but a
# model that answers where objects are, not their extent: a heat map of background + class
# probabilities per cell of a coarse grid. mAP is not defined for it. Not a [pipeline] task of
# its own: the train stage makes "detection" into it for a centroid model (for_model), and
# model.json then names it, so every later stage and the server ask it, not "detection".
CENTROIDS = Task(
    name="centroids", label="boxes", label_feature="objects", output="heatmap",
    losses=("centroids",), primary=CENTROID_F1,
    metrics=(CENTROID_F1, CENTROID_PRECISION, CENTROID_RECALL), metadata_output="heatmap")

SMAPE = Metric("smape", False, "symmetric mean absolute percentage error, 0..200 (%), the M4 "
               "definition: 200 |F - A| / (|A| + |F|), averaged over series and horizon steps",
               ".3f")
MASE = Metric("mase", False, "mean absolute scaled error: the MAE of each series' forecast over "
              "its in-sample seasonal-naive MAE (M4), averaged over series; below 1 beats the "
              "seasonal naive forecast in sample", ".4f")

# Forecasting: the label is the next `horizon` values of a series (float32, named t+1..t+h),
# the input a window of its last `lookback` raw values (plus covariates and a mask channel
# that says which steps are real); the model scales each window inside and answers in the
# series' own units (components/shared/task_heads.py, docs/forecasting.md).
FORECASTING = Task(
    name="forecasting", label="target", label_feature="target", output="values",
    losses=("mae", "mse"), primary=SMAPE, metrics=(SMAPE, MASE, MAE, RMSE),
    metadata_output="values")

BITS_PER_CHAR = Metric("bits_per_char", False, "mean cross-entropy of the next character, in "
                       "bits (log2); lower is better", ".4f")
PERPLEXITY = Metric("perplexity", False, "2 ** bits_per_char: the number of equally likely "
                    "characters the model is as unsure as", ".3f")

# Character-level generation: the label of each character is the next one (teacher forcing),
# so the Examples hold only texts (label_feature "text": the documents are their own labels);
# the model returns logits over the character vocabulary.
GENERATION = Task(
    name="generation", label="next_character", label_feature="text", output="logits",
    losses=("crossentropy",), primary=BITS_PER_CHAR, metrics=(BITS_PER_CHAR, PERPLEXITY),
    metadata_output="next_character_logits")

TASKS: dict[str, Task] = {task.name: task for task in (CLASSIFICATION, REGRESSION, DETECTION,
                                                       FORECASTING, GENERATION)}
NAMES = tuple(TASKS)
# The tasks a [pipeline] task becomes for some built-in models ((task, model) -> task).
BY_MODEL: dict[tuple[str, str], Task] = {(DETECTION.name, "fomo"): CENTROIDS}
# The models that a task needs one of ([train] model), and those only it can train.
MODELS_OF = {DETECTION.name: ("ssd", "fomo")}


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {list(TASKS)} "
                         "([pipeline] task).") from None


def for_model(task_name: str, model: str) -> Task:
    """The task a [pipeline] task is for this [train] model (detection with "fomo" is
    CENTROIDS); the task itself for every other model."""
    return BY_MODEL.get((task_name, model)) or get(task_name)


def of_name(name: str) -> Task:
    """A task by the name model.json records: a [pipeline] task or one for_model gives."""
    found = {task.name: task for task in BY_MODEL.values()}.get(name)
    return found or get(name)


def check_model(task_name: str, model: str, user_builder: bool) -> None:
    """A [train] model that cannot learn this task: ValueError naming the key, what fits and
    how to fix it (a user's builder is checked when it is built)."""
    needed = MODELS_OF.get(task_name)
    if needed and not user_builder and model not in needed:
        raise ValueError(
            f"[train] model = {model!r} cannot learn [pipeline] task = {task_name!r}: it "
            f"returns class probabilities, while the task needs one of {list(needed)} "
            f"(boxes or centroids); set [train] model to one of them.")
    owners = [task for task, models in MODELS_OF.items() if model in models]
    if owners and task_name not in owners:
        raise ValueError(
            f"[train] model = {model!r} is a detector: it learns [pipeline] task = "
            f"{owners[0]!r} only, not {task_name!r}; set [pipeline] task = {owners[0]!r} with "
            "box annotations, or a model of this task in [train] model (cnn, mlp, ...).")


def of_model(model_info: dict) -> Task:
    """The task a model.json (or a registry version's metadata) was trained for; models
    written before tasks existed are classifiers."""
    return of_name(model_info.get("task", CLASSIFICATION.name))
