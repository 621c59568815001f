"""The stage contract, typed: what a stage declares (StageSpec) and what its run returns
(StageResult).

A stage is a plain module (components/<stage>/stage.py) that ends with one declaration:

    SPEC = StageSpec(name="train", version=2, config=Config, run=run,
                     inputs={"examples": "Examples", "statistics": "Statistics"},
                     optional_inputs={"tuning": "Tuning"}, outputs={"model": "Model"},
                     fingerprint=fingerprint, collective=True, code=("edgepipe.models",))

Every field is a keyword of a frozen dataclass: a misspelt one (`colective=True`) fails when the
module is imported, and `check` rejects a spec whose values are of the wrong kind, or a module
that still declares a flag beside it (COLLECTIVE = True would otherwise be silently ignored).
The DAG checks every spec of a pipeline before anything runs (pipeline/dag.py).

    name             stage name, also the artifact folder name
    version          bump to invalidate every cached result of the stage
    config           the frozen pydantic model of the stage's config section (a StageConfig);
                     every field can change results
    run              run(inputs, outputs, config, context) -> StageResult (or a dict of
                     properties when the stage has no signal to give)
    inputs           input name -> artifact kind it reads; the DAG wires each input to an
                     upstream output of that kind
    optional_inputs  inputs read only when the stage feeding them is in the pipeline (train's
                     "tuning" from the optional tune stage); absent from `inputs` (and the cache
                     key) otherwise
    outputs          output name -> artifact kind it writes
    fingerprint      fingerprint(config, inputs) -> str | None: the state of the world outside
                     the artifacts that the result depends on (the raw files ingest reads, the
                     registry version evaluate compares with, a user model's source file); part
                     of the cache key (None: nothing for this config)
    collective       every worker of a multi-worker cluster runs the stage at once (training
                     under MultiWorkerMirroredStrategy); otherwise one process per key runs it,
                     others wait
    remote_io        the stage reads and writes only through edgepipe.contracts.storage and Beam
                     FileSystems, so on an object-store root (gs://) it gets URIs (str) for its
                     inputs, outputs and scratch_dir and writes straight into the bucket;
                     otherwise (TensorFlow stages) it always gets local folders
    optional         the stage is in the pipeline only when the config has its section (tune);
                     the inputs it would feed must be optional_inputs of their readers
    reads            other stages whose validated config the stage's Config receives in a field
                     of the same name (tune reads [train]); not a key of the stage's section
    code             modules or packages the stage loads by name rather than imports, whose
                     source is part of the cache key (pipeline/cache.py)

`run` reads only `inputs` (committed artifacts) and writes only into the empty directories in
`outputs`; the runner writes the manifests and commits. Stage modules import TensorFlow and
Beam inside `run`, so a fully cached pipeline never pays for importing them.

Signals from a stage to the runner (nothing else changes what runs next):

    StageResult.halt       a gate stopped the pipeline: the stage's artifact is committed (it
                           explains the stop), the run ends with status "halted" and this
                           message, and every later stage is skipped
    StageResult.resumed    the stage continued from work it kept in `context.scratch_dir` (a
                           training checkpoint) instead of starting over
    raise WorkerFinished   a non-chief worker of multi-worker training finished its share:
                           nothing is committed by this process, the run ends with status
                           "worker_finished", exit 0 (pipeline/stage.py)
    raise any exception    the stage failed: nothing is committed, later stages are skipped
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
import types
from typing import Any, Callable, Mapping

from edgepipe.pipeline.stage import StageConfig

# The module-level names of the contract before StageSpec: a module declaring one of them
# beside its SPEC would expect an effect it no longer has.
RETIRED = ("NAME", "VERSION", "INPUTS", "OPTIONAL_INPUTS", "OUTPUTS", "COLLECTIVE", "REMOTE_IO",
           "OPTIONAL", "READS", "CODE")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SpecError(TypeError):
    """A stage declares its contract wrongly; the message names the stage and the field."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class StageSpec:
    name: str
    version: int
    config: type[StageConfig]
    run: Callable[..., "StageResult | dict[str, Any]"]
    outputs: Mapping[str, str]
    inputs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    optional_inputs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fingerprint: Callable[[Any, Any], "str | None"] | None = None
    collective: bool = False
    remote_io: bool = False
    optional: bool = False
    reads: tuple[str, ...] = ()
    code: tuple[str, ...] = ()

    def __post_init__(self):
        for field in ("inputs", "optional_inputs", "outputs"):  # read-only from here on
            object.__setattr__(self, field, types.MappingProxyType(dict(getattr(self, field))))
        problems = _problems(self)
        if problems:
            raise SpecError(f"stage {self.name!r} declares its StageSpec wrongly: "
                            + "; ".join(problems) + ".")

    @property
    def module(self) -> types.ModuleType:
        """The module that defines the stage's run (its code is part of the cache key)."""
        return sys.modules[self.run.__module__]


def _problems(spec: StageSpec) -> list[str]:
    problems = []
    if not isinstance(spec.name, str) or not _NAME.match(spec.name):
        problems.append(f"name {spec.name!r} is not a lower-case identifier")
    if not isinstance(spec.version, int) or isinstance(spec.version, bool) or spec.version < 1:
        problems.append(f"version {spec.version!r} is not a positive int")
    if not (isinstance(spec.config, type) and issubclass(spec.config, StageConfig)):
        problems.append(f"config {spec.config!r} is not a StageConfig subclass")
    for field, arity in (("run", 4), ("fingerprint", 2)):
        function = getattr(spec, field)
        if function is None and field == "fingerprint":
            continue
        if not callable(function) or len(_positional(function)) != arity:
            problems.append(f"{field} must be a function of {arity} arguments")
    for field in ("inputs", "optional_inputs", "outputs"):
        for name, kind in getattr(spec, field).items():
            if not (isinstance(name, str) and _NAME.match(name) and isinstance(kind, str)
                    and kind):
                problems.append(f"{field}[{name!r}] = {kind!r}: expected a lower-case name "
                                "and an artifact kind")
    if not spec.outputs:
        problems.append("outputs is empty: a stage writes at least one artifact")
    both = sorted(set(spec.inputs) & set(spec.optional_inputs))
    if both:
        problems.append(f"{both} are both inputs and optional_inputs")
    for field in ("collective", "remote_io", "optional"):
        if not isinstance(getattr(spec, field), bool):
            problems.append(f"{field} must be True or False, not {getattr(spec, field)!r}")
    for field in ("reads", "code"):
        value = getattr(spec, field)
        if not (isinstance(value, tuple) and all(isinstance(item, str) for item in value)):
            problems.append(f"{field} must be a tuple of names, not {value!r}")
    if isinstance(spec.reads, tuple) and isinstance(spec.config, type) and issubclass(
            spec.config, StageConfig):
        missing = [name for name in spec.reads if name not in spec.config.model_fields]
        if missing:
            problems.append(f"reads {missing}, but its Config has no field of that name")
    return problems


def _positional(function: Callable) -> list[str]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def spec_of(module: types.ModuleType) -> StageSpec:
    """The module's SPEC, checked: SpecError naming the module when it has none, when it is
    not a StageSpec, or when a retired module-level flag is declared beside it."""
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, StageSpec):
        raise SpecError(f"{module.__name__} has no SPEC = StageSpec(...) (found {spec!r}); "
                        "declare the stage's contract in one StageSpec (pipeline/spec.py).")
    stale = [name for name in RETIRED if hasattr(module, name)]
    if stale:
        raise SpecError(f"{module.__name__} declares {stale} beside its SPEC: those are fields "
                        f"of StageSpec now ({', '.join(name.lower() for name in stale)}); move "
                        "them into SPEC.")
    return spec


@dataclasses.dataclass(frozen=True)
class StageResult:
    """What a stage's run returns: its JSON-able properties (counts, metrics, `blessed`, ...)
    and the two signals the runner acts on (see the module docstring)."""

    properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    halt: str = ""
    resumed: bool = False

    @classmethod
    def of(cls, returned: Any, stage: str) -> "StageResult":
        """A stage's return value as a StageResult (a dict: properties only); TypeError when it
        is neither, or when its properties are not JSON (before anything is committed)."""
        if isinstance(returned, dict):
            signals = sorted({"halt", "resumed"} & set(returned))
            if signals:
                raise TypeError(f"stage {stage!r} returned {signals} among its properties: "
                                "return StageResult(properties, halt=..., resumed=...) instead.")
            returned = cls(returned)
        elif returned is None:
            returned = cls()
        if not isinstance(returned, cls):
            raise TypeError(f"stage {stage!r} returned {type(returned).__name__}: expected a "
                            "StageResult or a dict of properties.")
        json.dumps(returned.properties)  # fail here, not after the commit
        return returned

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "StageResult":
        """The result a committed stage record holds."""
        return cls(dict(record.get("properties", {})), record.get("halt", ""),
                   bool(record.get("resumed", False)))
