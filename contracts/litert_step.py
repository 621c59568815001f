"""A generator's one-step TFLite signature on the LiteRT interpreter, for everyone who runs it:
the quantize stage (scoring every variant), `edgepipe generate` and the model server.

The signature is `step(token int32 [1], h float32 [layers, units], c float32 [layers, units])
-> {"logits" [1, V], "h", "c"}` (models/char_lstm.py); the state is explicit, so one
interpreter serves any number of texts, one after the other. Neutral: LiteRT and numpy only.
"""

from __future__ import annotations

import numpy as np

from edgepipe.contracts.litert import dequantize_output, model_feed


class StepRunner:
    """`runner(token, h, c) -> (logits [V], h, c)` over a .tflite's step signature."""

    def __init__(self, model_content: bytes | None = None, model_path: str | None = None,
                 num_threads: int = 1, name: str = "model"):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=model_content, model_path=model_path,
                                       num_threads=num_threads)
        self.name = name
        signatures = self.interpreter.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"{name}: expected one signature (the generator's step), found "
                             f"{sorted(signatures)}.")
        (self.signature, described), = signatures.items()
        if sorted(described["inputs"]) != ["c", "h", "token"] or \
                sorted(described["outputs"]) != ["c", "h", "logits"]:
            raise ValueError(f"{name}: signature {self.signature!r} takes {described['inputs']} "
                             f"and returns {described['outputs']}; a generator's step takes "
                             "token, h, c and returns logits, h, c.")
        self.runner = self.interpreter.get_signature_runner(self.signature)
        self.inputs = self.runner.get_input_details()
        self.outputs = self.runner.get_output_details()
        self.state_shape = tuple(int(size) for size in self.inputs["h"]["shape"])

    def __call__(self, token: int, h: np.ndarray, c: np.ndarray):
        feeds = {"token": np.asarray([token], np.int32), "h": h, "c": c}
        result = self.runner(**{key: model_feed(np.asarray(value), self.inputs[key], self.name)
                                for key, value in feeds.items()})
        out = {key: dequantize_output(result[key], *self.outputs[key]["quantization"][:2])
               for key in ("logits", "h", "c")}
        return out["logits"][0], out["h"], out["c"]
