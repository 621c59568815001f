"""Figures of the report's "inside the network" section: convolution filters, activation maps,
LSTM hidden states over time. Same conventions as plots.py (Agg canvas, PNG base64,
matplotlib imported lazily there)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgepipe.components.report.plots import _new_figure, _to_base64_png, grid_figure

MAX_MAPS = 32  # more activation maps than this would be too small to read


def conv_filters(kernel: np.ndarray) -> str:
    """Each filter of a first convolution layer [h, w, in, filters] as a small image.

    One input channel: grey levels, shared scale centred on zero so signs are comparable.
    Three: an RGB image per filter. Otherwise: the mean over input channels.
    """
    count = kernel.shape[-1]
    columns = min(16, count)
    rows = -(-count // columns)
    figure, grid = grid_figure(0.62 * columns + 0.9, 0.62 * rows + 0.2 * rows, rows, columns,
                               above=0.16, right=0.9)
    limit = float(np.abs(kernel).max()) or 1.0
    for index, axes in enumerate(grid.flat):
        axes.set_axis_off()
        if index >= count:
            continue
        weights = kernel[..., index]
        if weights.shape[-1] == 3:
            low, high = weights.min(), weights.max()
            axes.imshow((weights - low) / ((high - low) or 1.0), interpolation="nearest")
        else:
            image = axes.imshow(weights.mean(axis=-1), cmap="RdBu_r", vmin=-limit, vmax=limit,
                                interpolation="nearest")
        axes.set_title(str(index + 1), fontsize=7, pad=1)
    if kernel.shape[2] != 3:  # in the margin grid_figure left on the right
        width = figure.get_figwidth()
        bar = figure.add_axes([1 - 0.75 / width, 0.12, 0.12 / width, 0.76])
        figure.colorbar(image, cax=bar, label="weight")
    return _to_base64_png(figure)


def activation_maps(example: np.ndarray, activations: np.ndarray, title: str) -> str:
    """The input image, then the activation map [h, w] of each filter (up to MAX_MAPS)."""
    count = min(activations.shape[-1], MAX_MAPS)
    columns = min(11, count + 1)
    rows = -(-(count + 1) // columns)
    figure, grid = grid_figure(0.95 * columns, 1.05 * rows + 0.3, rows, columns, top=0.3,
                               above=0.16)
    image = np.asarray(example)
    for index, axes in enumerate(grid.flat):
        axes.set_axis_off()
        if index == 0:
            shown = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
            axes.imshow(shown, cmap="gray_r" if shown.ndim == 2 else None, interpolation="nearest")
            axes.set_title("input", fontsize=7, pad=1)
        elif index <= count:
            axes.imshow(activations[..., index - 1], cmap="magma", interpolation="nearest")
            axes.set_title(f"filter {index}", fontsize=7, pad=1)
    figure.suptitle(title, fontsize=9)
    return _to_base64_png(figure)


def hidden_states(states: np.ndarray, lengths: Sequence[int], titles: Sequence[str],
                  padding: str, step_name: str = "time step") -> str:
    """Per example, a heat map of every hidden unit (rows) over time steps (columns).

    Steps that are padding, not data, are shaded, so activity there is read as such.
    """
    count, steps, units = states.shape
    figure = _new_figure(10, 0.4 + count * max(1.4, min(3.0, units * 0.035)))
    grid = figure.subplots(count, 1, squeeze=False)[:, 0]
    limit = float(np.abs(states).max()) or 1.0
    for axes, example, length, title in zip(grid, states, lengths, titles):
        heat = axes.imshow(example.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                           interpolation="nearest")
        padded = max(0, steps - int(length))
        if padded:
            start = -0.5 if padding == "pre" else steps - padded - 0.5
            axes.axvspan(start, start + padded, color="#888888", alpha=0.55, linewidth=0)
        axes.set_title(title, fontsize=9, loc="left")
        axes.set_ylabel("unit")
    grid[-1].set_xlabel(f"{step_name} (shaded: padding)")
    figure.colorbar(heat, ax=list(grid), shrink=0.9, label="hidden state")
    return _to_base64_png(figure)
