"""The server's text generation: POST /v1/models/<name>[/versions/<v>]:generate with
{"prompt": "...", "length": N, "temperature": T, "seed": S} answers {"text": ..., ...}.

A generator's version holds model.tflite with the one-step signature and characters.json;
edgepipe.contracts.litert_step.Generator runs it (the same code as `edgepipe generate`), one
per worker in a pool. The same seed gives the same text; temperature 0 is greedy; the length
and the prompt are limited (edgepipe.contracts.characters) and a request past a limit, a
negative temperature or a missing field is a 400 saying what was expected.
"""

from __future__ import annotations

import pathlib
import queue
import time

from edgepipe.contracts import characters
from edgepipe.contracts.litert_step import Generator
from edgepipe.serving.requests import RequestError

FIELDS = {"prompt": str, "length": int, "temperature": (int, float), "seed": int}
DEFAULTS = {"prompt": "", "temperature": 1.0, "seed": 0}


class GeneratorRuntime:
    """Generators over one version's files; generate() is safe from many threads at once."""

    def __init__(self, path: pathlib.Path, workers: int):
        self.pool: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(max(1, workers)):
            self.pool.put(Generator.of_version(path))

    def generate(self, request: dict) -> dict:
        generator = self.pool.get()
        try:
            return generator.generate(**request)
        except ValueError as error:  # a request the generator refuses: say why
            raise RequestError(400, str(error)) from None
        finally:
            self.pool.put(generator)

    def warm_up(self) -> float:
        """Seconds of one generated character (and checks the model runs)."""
        started = time.perf_counter()
        self.generate({"prompt": "", "length": 1, "temperature": 0.0, "seed": 0})
        return time.perf_counter() - started


def parse_generate(request: dict) -> dict:
    """The checked fields of a generate body, or RequestError(400)."""
    unknown = sorted(set(request) - set(FIELDS))
    if unknown:
        raise RequestError(400, f"Unknown field(s) {unknown[:5]}; a generate request is "
                           "{\"prompt\": text, \"length\": characters, \"temperature\": number "
                           ">= 0 (0 is greedy), \"seed\": integer}.")
    if "length" not in request:
        raise RequestError(400, "A generate request needs \"length\": how many characters to "
                           f"write (1..{characters.MAX_LENGTH}).")
    values = {**DEFAULTS, **request}
    for key, kinds in FIELDS.items():
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise RequestError(400, f"\"{key}\" is a JSON {type(value).__name__}; expected "
                               f"{'a string' if key == 'prompt' else 'a number'}.")
    try:
        characters.check_request(values["prompt"], values["length"], values["temperature"])
    except ValueError as error:
        raise RequestError(400, str(error)) from None
    return values
