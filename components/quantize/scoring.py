"""How a TFLite variant is scored against the Keras model, per task (edgepipe.contracts.tasks):
the task's primary metric on the test split (what the deploy policy ranks by) and how close
the variant's outputs are to Keras's. Pure numpy; looked up by task name (SCORERS)."""

from __future__ import annotations

from typing import Any

import numpy as np


class Classification:
    """accuracy, and agreement: the share of test examples whose class matches Keras's."""

    SUMMARY = ("accuracy", "agreement")  # the scores the stage's properties list

    def __init__(self, labels, keras_outputs):
        self.labels = np.asarray(labels)
        self.keras_predictions = np.argmax(keras_outputs, axis=1)

    def keras(self) -> float:
        return float(np.mean(self.keras_predictions == self.labels))

    def __call__(self, outputs) -> dict[str, Any]:
        predictions = np.argmax(outputs, axis=1)
        return {"accuracy": float(np.mean(predictions == self.labels)),
                "agreement": float(np.mean(predictions == self.keras_predictions))}

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        return f"accuracy {scores['accuracy']:.4f}  agreement {scores['agreement']:.4f}"


class Regression:
    """mae and rmse in the data's units, and mean_abs_difference: how far the variant's values
    are from Keras's (0 for a faithful conversion)."""

    SUMMARY = ("mae", "mean_abs_difference")

    def __init__(self, targets, keras_outputs):
        self.targets = np.asarray(targets, np.float64)
        self.keras_outputs = np.asarray(keras_outputs, np.float64).reshape(self.targets.shape)

    def keras(self) -> float:
        return float(np.abs(self.keras_outputs - self.targets).mean())

    def __call__(self, outputs) -> dict[str, Any]:
        values = np.asarray(outputs, np.float64).reshape(self.targets.shape)
        return {"mae": float(np.abs(values - self.targets).mean()),
                "rmse": float(np.sqrt(((values - self.targets) ** 2).mean())),
                "mean_abs_difference": float(np.abs(values - self.keras_outputs).mean())}

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        return (f"mae {scores['mae']:.4g}  rmse {scores['rmse']:.4g}  "
                f"mean |Δ| vs Keras {scores['mean_abs_difference']:.4g}")


class Detection:
    """map_50 and map_50_95 (COCO, pycocotools) of the variant's boxes, and agreement: the
    share of Keras's detections scoring at least AGREEMENT_SCORE that the variant finds too
    (same class, IoU >= 0.9)."""

    SUMMARY = ("map_50", "map_50_95", "agreement")
    AGREEMENT_SCORE = 0.5

    def __init__(self, truths, keras_outputs):
        from edgepipe.components.shared import box_metrics

        self.truths = list(truths)
        self.keras_detections = [box_metrics.detections_of(keras_outputs, index)
                                 for index in range(len(self.truths))]
        self.names = [str(index) for index in range(1 + max(
            [int(label) for truth in self.truths for label in truth["label"]], default=0))]

    def _map(self, detections) -> dict[str, float]:
        from edgepipe.components.shared import box_metrics

        found = box_metrics.coco_map(self.truths, detections, self.names, (1, 1))
        return {"map_50": found["map_50"], "map_50_95": found["map_50_95"]}

    def keras(self) -> float:
        return self._map(self.keras_detections)["map_50"]

    def __call__(self, outputs) -> dict[str, Any]:
        from edgepipe.components.shared import box_metrics

        detections = [box_metrics.detections_of(outputs, index)
                      for index in range(len(self.truths))]
        agreed = total = 0
        for reference, found in zip(self.keras_detections, detections):
            kept = reference["scores"] >= self.AGREEMENT_SCORE
            as_truth = {"bbox": reference["boxes"][kept], "label": reference["classes"][kept]}
            matched, _ = box_metrics.match(as_truth, found, threshold=0.9)
            agreed, total = agreed + int(matched.sum()), total + int(kept.sum())
        return {**self._map(detections), "agreement": agreed / total if total else 1.0}

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        return (f"mAP@.5 {scores['map_50']:.4f}  mAP@[.5:.95] {scores['map_50_95']:.4f}  "
                f"agreement {scores['agreement']:.4f}")


def detector_outputs(raw, model_info: dict) -> dict[str, np.ndarray]:
    """A detector's Keras outputs (raw offsets and logits per anchor) decoded as the TFLite
    postprocess op decodes them."""
    import tensorflow as tf

    from edgepipe.components.shared import detection

    decoded = detection.postprocess(tf, tf.constant(raw), detection.anchors_of(model_info))
    return {key: value.numpy() for key, value in decoded.items()}


class Centroids:
    """centroid_f1, centroid_precision and centroid_recall of the variant's heat maps
    (edgepipe.contracts.centroids), and agreement: the share of Keras's centroids that the
    variant finds too (same class, within one grid cell)."""

    SUMMARY = ("centroid_f1", "centroid_precision", "centroid_recall", "agreement")

    def __init__(self, truths, keras_outputs):
        from edgepipe.contracts import centroids

        self.truths = list(truths)
        self.keras_outputs = np.asarray(keras_outputs)
        self.keras_centroids = [centroids.centroids(heatmap) for heatmap in self.keras_outputs]

    def _scores(self, heatmaps) -> dict[str, float]:
        from edgepipe.contracts import centroids

        found = centroids.scores(self.truths, heatmaps)
        return {key: found[key] for key in self.SUMMARY[:3]}

    def keras(self) -> float:
        return self._scores(self.keras_outputs)["centroid_f1"]

    def __call__(self, outputs) -> dict[str, Any]:
        from edgepipe.contracts import centroids

        heatmaps = np.asarray(outputs, np.float32).reshape(self.keras_outputs.shape)
        rows, columns = heatmaps.shape[1:3]
        agreed = total = 0
        for reference, heatmap in zip(self.keras_centroids, heatmaps):
            as_truth = {"bbox": np.array([[y, x, y, x] for y, x, _, _ in reference]).reshape(
                -1, 4), "label": np.array([label for _, _, label, _ in reference], np.int64)}
            agreed += centroids.match(as_truth, centroids.centroids(heatmap), rows, columns)
            total += len(reference)
        return {**self._scores(heatmaps), "agreement": agreed / total if total else 1.0}

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        return (f"centroid F1 {scores['centroid_f1']:.4f}  precision "
                f"{scores['centroid_precision']:.4f}  recall {scores['centroid_recall']:.4f}  "
                f"agreement {scores['agreement']:.4f}")


class Forecasting:
    """smape and mase of the point forecasts (as evaluate computes them: M4's definitions,
    MASE over each series' in-sample seasonal-naive MAE), and mean_abs_difference from
    Keras's outputs in the series' units. `for_examples` reads the scales from the Examples."""

    SUMMARY = ("smape", "mase", "mean_abs_difference")

    def __init__(self, targets, keras_outputs, scales, quantiles=()):
        self.targets = np.asarray(targets, np.float64)
        self.keras_outputs = np.asarray(keras_outputs, np.float64)
        self.scales, self.quantiles = np.asarray(scales, np.float64), list(quantiles)

    @classmethod
    def for_examples(cls, examples, targets, keras_outputs):
        from edgepipe.components.shared import forecast_metrics
        from edgepipe.components.shared import examples_io
        from edgepipe.contracts import forecast_windows

        settings = forecast_windows.read_settings(examples)
        series = forecast_windows.read_series(examples)
        ids = examples_io.load_numpy(examples, "test")["id"][:len(targets)]
        scales = []
        for value in ids:
            text = value.decode() if isinstance(value, bytes) else str(value)
            start = int(text.rsplit(forecast_windows.SEPARATOR, 1)[1])
            history = series[forecast_windows.series_of(text)]["values"][:start]
            scales.append(forecast_metrics.seasonal_scale(history, settings["seasonality"]))
        return cls(targets, keras_outputs, scales, settings["quantiles"])

    def _scores(self, outputs) -> dict[str, float]:
        from edgepipe.components.shared import forecast_metrics
        from edgepipe.contracts import forecast_windows

        points = forecast_windows.point_forecast(outputs, self.targets.shape[1], self.quantiles)
        summary = forecast_metrics.summary(self.targets, points, self.scales)
        return {key: summary[key] for key in ("smape", "mase", "mae", "rmse")}

    def keras(self) -> float:
        return self._scores(self.keras_outputs)["smape"]

    def __call__(self, outputs) -> dict[str, Any]:
        outputs = np.asarray(outputs, np.float64).reshape(self.keras_outputs.shape)
        return {**self._scores(outputs),
                "mean_abs_difference": float(np.abs(outputs - self.keras_outputs).mean())}

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        return (f"smape {scores['smape']:.4g}  mase {scores['mase']:.4g}  "
                f"mean |Δ| vs Keras {scores['mean_abs_difference']:.4g}")


SCORERS = {"classification": Classification, "regression": Regression, "detection": Detection,
           "centroids": Centroids, "forecasting": Forecasting}
# Keras outputs that need decoding before their scorer reads them (a detector's raw outputs).
DECODERS = {"detection": detector_outputs}
