"""A user's own model builder: `[train] model = "path/to/my_model.py:build"` (relative to the
config file) or `"package.module:build"` (an importable module).

The function gets the arguments of the built-in builders that it declares (input_shape,
num_classes, mean and variance, or vocabulary_size for text; all of them if it takes
**kwargs) plus `[train.model_options]`, and returns a tf_keras model. Checking a reference
reads the source with `ast` (no import, no Keras), so a missing file or function is a config
error before anything runs; only `load` executes the user's code.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import importlib.util
import pathlib
from typing import Any, Callable

EXAMPLE = 'model = "my_model.py:build" (a file beside the config) or "my_package.models:build"'


@dataclasses.dataclass(frozen=True)
class Signature:
    parameters: tuple[str, ...]  # every named parameter
    required: tuple[str, ...]  # those without a default
    any_keyword: bool  # it takes **kwargs


def is_reference(model: str) -> bool:
    """A user model ("file.py:function", "module:function"), not a built-in's name."""
    return ":" in model


def _split(reference: str) -> tuple[str, str]:
    where, _, function = reference.rpartition(":")
    if not where or not function.isidentifier():
        raise ValueError(f"[train] model {reference!r}: expected <file.py or module>:<function>"
                         f", e.g. {EXAMPLE}.")
    return where, function


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def resolve(reference: str, base_dir: str | pathlib.Path = ".") -> str:
    """The reference with its file made absolute (relative to `base_dir`, the config file's
    folder), after checking that the file or module exists and defines the function."""
    where, function = _split(reference)
    if _is_file(where):
        path = (pathlib.Path(base_dir) / where).resolve()
        if not path.is_file():
            raise ValueError(f"[train] model {reference!r}: no file {path} (paths are relative "
                             f"to the config file's folder); write e.g. {EXAMPLE}.")
        reference = f"{path}:{function}"
    signature(reference)  # the function exists and takes the data's arguments
    return reference


def source_file(reference: str) -> pathlib.Path:
    """The file that defines the builder (a module's file is located without running it;
    its parent packages are imported, as Python's import system requires)."""
    where, _ = _split(reference)
    if _is_file(where):
        return pathlib.Path(where)
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError) as error:
        spec, problem = None, f"{type(error).__name__}: {error}"
    else:
        problem = ("no such module on the Python path" if spec is None else
                   f"it is {spec.origin or 'a namespace'}, not a Python source file")
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(f"[train] model {reference!r}: cannot find module {where!r} ({problem})"
                         f"; install it or give a file path instead, e.g. {EXAMPLE}.")
    return pathlib.Path(spec.origin)


def fingerprint(reference: str) -> str:
    """sha256 of the builder's source file: editing it re-runs training."""
    return hashlib.sha256(source_file(reference).read_bytes()).hexdigest()


def signature(reference: str) -> Signature:
    """The builder's parameters, read from its source with ast (nothing is imported)."""
    path = source_file(reference)
    _, function = _split(reference)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as error:
        raise ValueError(f"[train] model {reference!r}: {path} is not valid Python ({error}); "
                         "fix the file.") from None
    found = [node for node in tree.body
             if isinstance(node, ast.FunctionDef) and node.name == function]
    if not found:
        defined = sorted(node.name for node in tree.body if isinstance(node, ast.FunctionDef))
        raise ValueError(f"[train] model {reference!r}: {path} defines no top-level function "
                         f"{function!r} (its functions: {defined or 'none'}); define "
                         f"`def {function}(input_shape, num_classes, ...)` there or name "
                         "another function after the ':'.")
    arguments = found[-1].args
    positional = arguments.posonlyargs + arguments.args
    defaults = len(arguments.defaults)
    required = [a.arg for a in positional[:len(positional) - defaults]]
    required += [a.arg for a, default in zip(arguments.kwonlyargs, arguments.kw_defaults)
                 if default is None]
    names = [a.arg for a in positional + arguments.kwonlyargs]
    result = Signature(tuple(names), tuple(required), arguments.kwarg is not None)
    missing = [name for name in ("input_shape", "num_classes")
               if name not in names and not result.any_keyword]
    if missing:
        raise ValueError(f"[train] model {reference!r}: {function}() in {path} takes no "
                         f"argument {missing[0]!r}; every builder gets input_shape and "
                         "num_classes (and mean, variance or vocabulary_size if it declares "
                         f"them): def {function}(input_shape, num_classes, mean, variance, "
                         "**options).")
    return result


def load(reference: str) -> Callable[..., Any]:
    """Import the user's file or module and return the function (runs the user's code)."""
    where, function = _split(reference)
    path = source_file(reference)
    if _is_file(where):
        name = f"edgepipe_user_model_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, function)
