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


class Generator:
    """A generator (a .tflite with the step signature and its characters.json) that writes
    text: what `edgepipe generate`, the server and the report run. `of_version` opens a
    registry version folder (model.tflite beside characters.json)."""

    def __init__(self, tflite_path, characters_path, num_threads: int = 1):
        from edgepipe.contracts import characters

        self.vocabulary = characters.read(characters_path)
        self.tokens, self.units = self.vocabulary["tokens"], self.vocabulary["units"]
        self.index = characters.index_of(self.tokens)
        self.runner = StepRunner(model_path=str(tflite_path), num_threads=num_threads,
                                 name=str(tflite_path))

    @classmethod
    def of_version(cls, folder, num_threads: int = 1) -> "Generator":
        import pathlib

        from edgepipe.contracts import characters

        folder = pathlib.Path(folder)
        return cls(folder / "model.tflite", folder / characters.FILE, num_threads)

    def generate(self, prompt: str, length: int, temperature: float, seed: int) -> dict:
        """{"text", "prompt", "unknown_characters", "note"?}; ValueError for a bad request."""
        from edgepipe.contracts import characters

        characters.check_request(prompt, length, temperature)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 63:
            raise ValueError(f"seed must be a whole number 0..2**63-1, got {seed!r}.")
        units = characters.as_units(prompt, self.units)
        prompt_ids = characters.encode(units, self.index)
        unknown = sorted({char for char, i in zip(units, prompt_ids)
                          if i == characters.UNK_ID})
        generated = characters.generate(self.runner, self.runner.state_shape, prompt_ids,
                                        length, float(temperature), seed)
        answer = {"text": characters.decode(generated, self.tokens, self.units),
                  "prompt": prompt, "length": length, "temperature": temperature, "seed": seed,
                  "unknown_characters": unknown}
        if unknown:
            answer["note"] = (f"{len(unknown)} prompt character(s) {unknown[:20]!r} are not in "
                              "the model's vocabulary and were read as [UNK]")
        return answer
