"""The `edgepipe` command: run a pipeline (or one stage), show, inspect, serve.

A thin layer over the Python API in edgepipe/api.py: run a pipeline or one stage of it,
show what exists, inspect an artifact, serve the registry, compile a Kubeflow / Vertex AI
pipeline spec.

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
from edgepipe import api
from edgepipe.contracts import tasks
from edgepipe.pipeline import dag
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
        config = api.load_config(args.config, overrides=args.set, root=args.root,
                                 beam_options=args.beam_option)
        if args.command == "status":
            return status(config)
        result = api.run(config, stages=args.stage or None, no_cache=args.no_cache)
    except (api.ConfigError, api.StorageError) as error:
        print(f"edgepipe: {error}", file=sys.stderr)
        return 2
    except api.StageFailed as error:
        print(f"edgepipe: {error}", file=sys.stderr)
        return 1
    _print_summary(result.summary)
    return 0 if result.status in ("succeeded", "worker_finished") else 1


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

    inspect_parser = commands.add_parser("inspect", help="print an artifact's manifest readably")
    inspect_parser.add_argument("path", help="an artifact folder, its manifest.json or a run summary")

    serve_parser = commands.add_parser(
        "serve", help="serve a model registry over HTTP (TensorFlow Serving's REST API)")
    serve_parser.add_argument("config", nargs="?",
                              help="a pipeline config whose [registry] to serve (or --registry)")
    serving_server.add_arguments(serve_parser, registry_required=False)
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


def _print_summary(summary: dict) -> None:
    """One line per stage of the run (in DAG order, as the summary lists them), then the
    lines each stage has to say about its result (STAGE_LINES)."""
    print(f"\nrun {summary['run_id']}: {summary['status']} in {summary['seconds']:.1f} s")
    for stage in summary["stages"]:
        print(f"  {stage['name']:<{WIDTH}} {stage['status']:<8} {stage.get('seconds', 0):7.1f} s")
    for stage in summary["stages"]:
        lines = STAGE_LINES.get(stage["name"])
        if lines is not None:
            for line in lines(stage.get("metrics", {}), stage):
                print(line)
    print(f"summary: {summary['root']}/runs/latest.json")


def _tune_lines(metrics: dict, stage: dict) -> list[str]:
    return [f"\n{_tuning_line(metrics)}"] if "best_params" in metrics else []


def _scores(record: dict) -> str:
    """The task's metrics found in a record (evaluate's properties, a quantize variant)."""
    task = next((task for task in tasks.TASKS.values() if task.primary.name in record), None)
    if task is None:
        return ""
    return "  ".join(
        f"{metric.name} {record[metric.name]:{'.4f' if metric is tasks.ACCURACY else '.4g'}}"
        for metric in task.metrics if metric.name in record)


def _evaluate_lines(metrics: dict, stage: dict) -> list[str]:
    if not _scores(metrics):
        return []
    verdict = "BLESSED" if metrics.get("blessed") else "NOT BLESSED"
    return [f"\ntest {_scores(metrics)}: {verdict} ({metrics.get('reason', '')})"]


def _quantize_lines(metrics: dict, stage: dict) -> list[str]:
    lines = [f"  {variant['name']:<14} {variant['size_bytes'] / 1024:8.1f} KB"
             f"  {_scores(variant)}  p50 {variant['latency_ms_p50']:.3f} ms"
             f"{_variant_seconds(variant.get('seconds'))}"
             for variant in metrics.get("variants", [])]
    if metrics.get("deployable"):
        deployable = metrics["deployable"]
        lines.append(f"  deployable: {deployable.get('variant')} ({deployable.get('reason', '')})")
    return lines


def _push_lines(metrics: dict, stage: dict) -> list[str]:
    return [f"\npush: {metrics.get('reason') or metrics}"] if metrics else []


def _report_lines(metrics: dict, stage: dict) -> list[str]:
    if not stage.get("artifacts"):
        return []
    return [f"\nreport: {stage['artifacts']['report']}/report.html"]


# What a stage of the DAG (pipeline/dag.py) prints below the table; tests/pipeline/test_cli.py
# checks that every name here is a stage of the DAG.
def _train_lines(metrics: dict, stage: dict) -> list[str]:
    """The precision "auto" picked (or the config set) and the time budget, if any."""
    choice, budget = metrics.get("precision"), metrics.get("budget")
    if not isinstance(choice, dict):
        return []
    lines = [f"\ntrain: precision {choice['precision']} ({choice['requested']}: "
             f"{choice['reason']})"]
    if budget:
        lines.append(f"  time budget {budget['max_minutes']:g} min: {budget['epochs_run']} of "
                     f"{budget['epochs_configured']} epochs in {budget['training_minutes']} min; "
                     f"all {budget['epochs_configured']} would have taken about "
                     f"{budget['full_run_minutes_estimate']} min")
    return lines


STAGE_LINES = {"tune": _tune_lines, "train": _train_lines, "evaluate": _evaluate_lines,
               "quantize": _quantize_lines, "push": _push_lines, "report": _report_lines}
WIDTH = max(len(node.stage) for node in dag.CLASSIFICATION) + 1  # the stage column


def _variant_seconds(seconds: dict | None) -> str:
    """A quantize variant's time split, as the run summary records it."""
    if not seconds:
        return ""
    return (f"  s: fine-tune {seconds.get('fine_tune', 0):.1f} convert "
            f"{seconds.get('convert', 0):.1f} measure {seconds.get('measure', 0):.1f}")


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
                print(f"              {_tuning_line(record['properties'])}")
    latest = api.latest_run(config.root)
    if latest is not None:
        print(f"latest run: {latest['run_id']} {latest['status']} in {latest['seconds']:.1f} s")
    return 0


def _tuning_line(metrics: dict) -> str:
    """The tune stage's result in one line: trials, best value, best parameters."""
    params = ", ".join(f"{key}={value}" for key, value in metrics["best_params"].items())
    return (f"tune: {metrics['trials']} trials ({metrics.get('pruned', 0)} pruned), best "
            f"{metrics.get('metric', 'value')} {metrics['best_value']:.4f} (trial "
            f"{metrics.get('best_trial')}): {params}")


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
