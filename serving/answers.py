"""How the server answers a predict request, per task (edgepipe.contracts.tasks): TF Serving's
REST `predict` body ("predictions" in row format, "outputs" in columnar format), plus the
fields a task adds for convenience. Looked up by the model's task, never by branches."""

from __future__ import annotations

import numpy as np

from edgepipe.contracts import centroids as read_out


def classification(outputs: np.ndarray, names: list[str], key: str) -> dict:
    """Class probabilities, and the most probable class with its probability."""
    best = outputs.argmax(axis=1)
    return {key: outputs.tolist(), "classes": [names[index] for index in best],
            "confidences": outputs[range(len(best)), best].tolist()}


def regression(outputs: np.ndarray, names: list[str], key: str) -> dict:
    """The predicted values as floats, one list per instance (one value per target, named
    in the order of "targets"), in the data's own units."""
    return {key: np.asarray(outputs, np.float64).tolist(), "targets": list(names)}


def detection(outputs: dict, names: list[str], key: str, letterboxes=()) -> dict:
    """Per image its boxes, most confident first: class name, score, and the box in pixels
    of the image sent (xmin, ymin, xmax, ymax; the letterbox undone) for an encoded image, or
    as fractions of the model input (ymin, xmin, ymax, xmax) for a pixel array."""
    found = []
    for index in range(len(outputs["count"])):
        count = int(outputs["count"][index])
        boxes = np.asarray(outputs["boxes"][index][:count], np.float64)
        where = letterboxes[index] if index < len(letterboxes) else None
        pixels = where.to_original(boxes) if where is not None else None
        found.append([{
            "class": names[int(label)], "score": float(score),
            **({"box": [round(float(v), 2) for v in pixels[row]],
                "box_format": "xmin, ymin, xmax, ymax in pixels of the image sent"}
               if pixels is not None else
               {"box": [float(v) for v in boxes[row]],
                "box_format": "ymin, xmin, ymax, xmax as fractions of the model input"})}
            for row, (label, score) in enumerate(zip(outputs["classes"][index][:count],
                                                     outputs["scores"][index][:count]))])
    return {key: found}


def centroids(outputs: np.ndarray, names: list[str], key: str, letterboxes=()) -> dict:
    """Per image its centroids (a centroid detector's heat map read out as evaluate reads it,
    edgepipe.contracts.centroids), most confident first: class name, score, and x, y in
    pixels of the image sent (the letterbox undone) for an encoded image, or as fractions of
    the model input for a pixel array."""
    found = []
    for index, heatmap in enumerate(np.asarray(outputs, np.float32)):
        points = sorted(read_out.centroids(heatmap), key=lambda item: -item[3])
        where = letterboxes[index] if index < len(letterboxes) else None
        if where is not None:
            placed = [{"x": round(x, 2), "y": round(y, 2),
                       "coordinates": "pixels of the image sent"}
                      for x, y in read_out.in_pixels(points, where)]
        else:
            placed = [{"x": x, "y": y, "coordinates": "fractions of the model input"}
                      for y, x, _, _ in points]
        found.append([{"class": names[label], "score": score, **place}
                      for (_, _, label, score), place in zip(points, placed)])
    return {key: found}


def forecasting(outputs: np.ndarray, names: list[str], key: str) -> dict:
    """The next horizon values of each series, in its own units; with quantile outputs
    (names "t+1 q0.1", ...), the point forecasts are the 0.5 quantile's and "quantiles"
    holds every quantile's forecasts, "intervals" the outermost ones as lower and upper."""
    outputs = np.asarray(outputs, np.float64)
    steps = list(dict.fromkeys(name.split(" ")[0] for name in names))
    quantiles = sorted({float(name.split(" q")[1]) for name in names if " q" in name})
    if not quantiles:
        return {key: outputs.tolist(), "horizon": steps}
    grid = outputs.reshape(len(outputs), len(steps), len(quantiles))
    return {key: grid[:, :, quantiles.index(0.5)].tolist(), "horizon": steps,
            "quantiles": {f"{q:g}": grid[:, :, i].tolist() for i, q in enumerate(quantiles)},
            "intervals": {"level": [quantiles[0], quantiles[-1]],
                          "lower": grid[:, :, 0].tolist(), "upper": grid[:, :, -1].tolist()}}





ANSWERS = {"classification": classification, "regression": regression, "detection": detection,
           "centroids": centroids, "forecasting": forecasting}


# The answers that place their result in the image sent: they take the letterboxes of the
# request's encoded images (serving/images.py).
IN_THE_IMAGE_SENT = ("detection", "centroids")


def answer(task_name: str, outputs, names: list[str], columnar: bool,
           letterboxes=()) -> dict:
    key = "outputs" if columnar else "predictions"
    placed = {"letterboxes": letterboxes} if task_name in IN_THE_IMAGE_SENT else {}
    return ANSWERS[task_name](outputs, names, key, **placed)
