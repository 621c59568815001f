"""The commands that run a pipeline's pushed model (from its [registry], on LiteRT, as a device
runs it): `edgepipe forecast` (forecasting), `edgepipe generate` (generation) and `edgepipe
listen` (keyword spotting). COMMANDS maps each name to (add its arguments, run it); cli.py
registers them all, and a ModelCommandError is a one-line message with exit status 2."""

from __future__ import annotations

import argparse
import pathlib
import sys

from edgepipe import api


class ModelCommandError(ValueError):
    """A file, registry or request the command cannot use; the message names it."""


def add_forecast(commands) -> None:
    parser = commands.add_parser(
        "forecast", help="forecast every series of a CSV file with the pushed model (LiteRT)")
    parser.add_argument("config", help="the forecasting pipeline's config (its [registry] and "
                        "[ingest] column names)")
    parser.add_argument("--csv", required=True, type=pathlib.Path,
                        help="long-format CSV of the series' recent values (empty values "
                        "are repaired by the config's [ingest] fill, or refused with fill = "
                        "\"none\")")
    parser.add_argument("-o", "--output", required=True, type=pathlib.Path,
                        help="where to write the forecasts (CSV)")


def forecast(args: argparse.Namespace) -> int:
    """Forecast the series of --csv with the config's pushed model, to --output."""
    from edgepipe.serving import forecast_file

    config = api.load_config(args.config)
    ingest = config.stages["ingest"]
    columns = {"series": ingest.series_column, "time": ingest.time_column,
               "target": (ingest.target_columns or ("value",))[0],
               "covariates": list(ingest.covariate_columns)}
    try:
        done = forecast_file.forecast(config, args.csv, args.output, columns, ingest.fill)
    except (ValueError, FileNotFoundError) as error:
        raise ModelCommandError(str(error)) from None
    repaired = done["repaired"]
    if repaired["values"]:
        shown = ", ".join(str(line) for line in repaired["lines"][:8])
        how = {"previous": "with the previous value", "interpolate": "by interpolation"}
        print(f"{args.csv}: {repaired['values']} empty or non-numeric value(s) in "
              f"{repaired['series']} series filled {how[repaired['fill']]} ([ingest] fill = "
              f"\"{repaired['fill']}\"), line(s) {shown}"
              f"{', ...' if len(repaired['lines']) > 8 else ''}", file=sys.stderr)
    print(f"wrote {done['output']}: {done['series']} series x {done['horizon']} steps, "
          f"{done['model']} v{done['version']} on LiteRT")
    return 0


def add_generate(commands) -> None:
    parser = commands.add_parser(
        "generate", help="write text with the pushed generator of a config's [registry] "
        "(its deployed .tflite, on LiteRT)")
    parser.add_argument("config", help="a generation pipeline config")
    parser.add_argument("--prompt", default="", help="text to continue")
    parser.add_argument("--length", type=int, default=200, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="0: greedy; 1: the model's own probabilities")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same text")
    parser.add_argument("--version", dest="model_version", type=int,
                        help="registry version (default: the newest)")


def generate(args: argparse.Namespace) -> int:
    """Continue --prompt with the newest (or --version) pushed generator on LiteRT."""
    from edgepipe.contracts import registry
    from edgepipe.contracts.litert_step import Generator

    config = api.load_config(args.config)
    try:
        folder, version = registry.pushed_version(config, args.model_version)
    except ValueError as error:
        raise ModelCommandError(str(error)) from None
    name = config.registry.model_name
    if registry.read_version_metadata(folder).get("task") != "generation":
        raise ModelCommandError(f"{name} v{version} in {config.registry.path} is not a text "
                                "generator; point --version or the config at a generation "
                                "pipeline's model.")
    try:
        answer = Generator.of_version(folder).generate(args.prompt, args.length,
                                                       args.temperature, args.seed)
    except ValueError as error:
        raise ModelCommandError(f"generate: {error}") from None
    if answer.get("note"):
        print(f"note: {answer['note']}", file=sys.stderr)
    print(args.prompt + answer["text"])
    return 0


def add_listen(commands) -> None:
    from edgepipe import listen

    parser = commands.add_parser(
        "listen", help="print the keywords a pushed keyword model hears in a WAV recording")
    listen.add_arguments(parser)


def listen(args: argparse.Namespace) -> int:
    from edgepipe import listen as keyword_listener

    config = api.load_config(args.config)
    try:
        return keyword_listener.main(args, config)
    except (ValueError, FileNotFoundError) as error:  # no registry or model, a bad WAV file
        raise ModelCommandError(str(error)) from None


COMMANDS = {"forecast": (add_forecast, forecast), "generate": (add_generate, generate),
            "listen": (add_listen, listen)}
