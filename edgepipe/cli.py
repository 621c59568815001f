"""The `edgepipe` command: run a pipeline (or one stage), show, inspect, serve.

A thin layer over the Python API in edgepipe/api.py: run a pipeline or one stage of it,
show what exists, inspect an artifact, serve the registry, compile a Kubeflow / Vertex AI
pipeline spec, remove what failed runs left (gc).

Exit status: 0 succeeded (or cached), 1 a stage failed or a gate halted the run, 2 the
config or the command line is invalid (nothing ran).
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys

import edgepipe
from edgepipe import api, model_commands
from edgepipe.contracts import artifacts, storage
from edgepipe.printout import STAGE_LINES, WIDTH, print_summary, tuning_line  # noqa: F401
from edgepipe.serving import server as serving_server


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Our progress at INFO; Beam, TFDS and TensorFlow only when something is wrong.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("edgepipe").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:  # gcsfs logs each failed retry with a traceback; our error says it
        logging.getLogger("gcsfs").setLevel(logging.CRITICAL)
    try:
        if args.command == "inspect":
            return inspect(pathlib.Path(args.path))
        if args.command == "serve":
            return serve(args)
        if args.command == "compile":
            return compile_command(args)
        if args.command in model_commands.COMMANDS:  # forecast, generate, listen
            return model_commands.COMMANDS[args.command][1](args)
        config = api.load_config(args.config, overrides=args.set, root=args.root,
                                 beam_options=args.beam_option)
        if args.command == "status":
            return status(config)
        if args.command == "gc":
            return gc_command(config, args.dry_run)
        result = api.run(config, stages=args.stage or None, no_cache=args.no_cache)
    except (api.ConfigError, api.StorageError, model_commands.ModelCommandError) as error:
        print(f"edgepipe: {error}", file=sys.stderr)
        return 2
    except api.StageFailed as error:
        print(f"edgepipe: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the store itself (locks, staging, run summary), not a stage
        print(f"edgepipe: {_os_error(error)}; check that the artifact root "
              f"{getattr(args, 'root', None) or '(from the config)'} is a writable folder on a "
              "disk with free space, or pass another --root.", file=sys.stderr)
        return 2
    print_summary(result.summary)
    return 0 if result.status in ("succeeded", "worker_finished") else 1


def _os_error(error: OSError) -> str:
    """One line: what failed and on which file (no chained traceback)."""
    where = f": {error.filename}" if error.filename else ""
    return f"{error.strerror or type(error).__name__}{where}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgepipe", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edgepipe {edgepipe.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help="run a pipeline config")
    _add_config_arguments(run_parser)
    run_parser.add_argument("--no-cache", action="store_true", help="run every stage again")
    run_parser.add_argument(
        "--stage", action="append", default=[], metavar="NAME",
        help="run only this stage (repeatable), from committed inputs: what one task of an "
             "orchestrator runs")

    compile_parser = commands.add_parser(
        "compile", help="write a Kubeflow / Vertex AI pipeline spec: one task per stage")
    compile_parser.add_argument("config", help="pipeline config, embedded in the spec")
    compile_parser.add_argument("--target", choices=("kfp", "vertex"), default="kfp",
                                help="kfp: Kubeflow / Vertex AI Pipelines; vertex: train as a "
                                     "multi-replica Vertex AI custom job")
    compile_parser.add_argument("-o", "--output", required=True, help="the YAML file to write")
    compile_parser.add_argument("--image", help="image of every task (default: [kfp] image)")
    compile_parser.add_argument("--root", help="default artifact root of the pipeline "
                                "(gs://BUCKET/PREFIX); else [pipeline] root if it is a URI")
    compile_parser.add_argument("--config-dir", help="folder the tasks resolve the config's "
                                "relative paths against (default: [kfp] config_dir)")
    compile_parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                                help="override a config value in every task (repeatable)")

    status_parser = commands.add_parser("status", help="list the artifacts that exist for a config")
    _add_config_arguments(status_parser)

    gc_parser = commands.add_parser(
        "gc", help="remove the checkpoints (scratch) of failed runs and stale staging folders")
    _add_config_arguments(gc_parser)
    gc_parser.add_argument("--dry-run", action="store_true",
                           help="list what would be removed, remove nothing")

    inspect_parser = commands.add_parser("inspect", help="print an artifact's manifest readably")
    inspect_parser.add_argument("path", help="an artifact folder, its manifest.json or a run summary")

    serve_parser = commands.add_parser(
        "serve", help="serve a model registry over HTTP (TensorFlow Serving's REST API)")
    serve_parser.add_argument("config", nargs="?",
                              help="a pipeline config whose [registry] to serve (or --registry)")
    serving_server.add_arguments(serve_parser, registry_required=False)
    for add_arguments, _ in model_commands.COMMANDS.values():
        add_arguments(commands)
    return parser


def compile_command(args: argparse.Namespace) -> int:
    from edgepipe.pipeline import kfp_compile

    done = kfp_compile.compile_pipeline(args.config, args.target, args.output, image=args.image,
                                        root=args.root, overrides=args.set,
                                        config_dir=args.config_dir)
    print(f"wrote {done['output']}: {len(done['tasks'])} tasks ({' -> '.join(done['tasks'])}), "
          f"target {done['target']}, image {done['image']}, root "
          f"{done['root'] or '(a required pipeline parameter)'}")
    return 0


def serve(args: argparse.Namespace) -> int:
    """Serve --registry, or the [registry] of the config given."""
    if args.config:
        config = api.load_config(args.config)
        if config.registry is None and not args.registry:
            raise api.ConfigError(f"{args.config} has no [registry] section: add one (path, "
                                  "model_name) or pass --registry DIR.")
        if not args.registry:
            args.registry = config.registry.path
            args.model = args.model or [config.registry.model_name]
    if not args.registry:
        raise api.ConfigError("edgepipe serve needs a registry: pass a pipeline config with a "
                              "[registry] section, or --registry DIR.")
    api.check_storage(args.registry)  # a gs:// registry: scheme, credentials, bucket
    return serving_server.serve(args)


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="pipeline config, e.g. configs/quickstart.toml")
    parser.add_argument("--root", help="artifact root (overrides [pipeline] root)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=3 (repeatable)",
    )
    parser.add_argument(
        "--beam-option", action="append", default=[], metavar="KEY=VALUE",
        help="a Beam pipeline option, e.g. --beam-option direct_num_workers=2 (repeatable)",
    )


def gc_command(config, dry_run: bool) -> int:
    from edgepipe.pipeline import gc

    if storage.is_remote(config.root):
        api.check_storage(config.root)
    removed = gc.collect(config.root, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for folder, size in removed:
        print(f"  {verb} {folder} ({size / 1e6:.1f} MB)")
    total = sum(size for _, size in removed)
    print(f"{verb} {len(removed)} folder(s), {total / 1e6:.1f} MB, under {config.root}")
    return 0


def status(config) -> int:
    entries = api.status(config)  # an unusable root fails here, before anything is printed
    print(f"pipeline {config.name!r} ({config.path}), artifacts under {config.root}")
    for entry in entries:
        record = entry["record"]
        if record is None:
            print(f"  {entry['stage']:<{WIDTH}} missing   key {entry['key']}: will run")
        else:
            print(f"  {entry['stage']:<{WIDTH}} committed key {entry['key']}: run {record['run_id']}, "
                  f"{record['seconds']:.1f} s, {record['created']}")
            if entry["stage"] == "tune" and "best_params" in record.get("properties", {}):
                print(f"              {tuning_line(record['properties'])}")
    latest = api.latest_run(config.root)
    if latest is not None:
        print(f"latest run: {latest['run_id']} {latest['status']} in {latest['seconds']:.1f} s")
    return 0


def inspect(path: pathlib.Path) -> int:
    manifest_path = path / "manifest.json" if path.is_dir() else path
    if not manifest_path.is_file():
        print(f"edgepipe: {path} has no manifest.json: not a committed artifact", file=sys.stderr)
        return 2
    manifest = json.loads(manifest_path.read_text())
    folder = manifest_path.parent
    if "kind" in manifest:
        print(f"{manifest['kind']} artifact, output {manifest['output']!r} of stage {manifest['stage']!r}")
    elif "stage" in manifest:
        print(f"stage {manifest['stage']!r} (version {manifest['version']}), outputs {manifest['outputs']}")
    elif "run_id" in manifest:
        print(f"run summary of pipeline {manifest['pipeline']!r}")
    for field in ("key", "run_id", "created", "seconds", "status"):
        if field in manifest:
            print(f"  {field:<10} {manifest[field]}")
    properties = manifest.get("properties")
    if properties:
        print("properties:")
        print(_indent(json.dumps(properties, indent=2)))
    if "stages" in manifest:
        for stage in manifest["stages"]:
            print(f"  {stage['name']:<{WIDTH}} {stage['status']:<8} "
                  f"{stage.get('seconds', 0):7.1f} s")
    if manifest_path.name == "manifest.json":
        print("files:")
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                print(f"  {file.relative_to(folder)}  ({file.stat().st_size:,} bytes)")
    return 0


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
