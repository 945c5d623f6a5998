"""CLI flags generated from the RunConfig fields, plus `--config FILE.yaml`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from sbbench.config import ConfigError, RunConfig, config_fields

GROUP_TITLES = {
    "method": "selection method",
    "workload": "workload",
    "optim": "optimisation",
    "run": "execution",
}


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def default_text(value: Any) -> str:
    """A field's default as a user would type it on the command line."""
    if value is None or value == ():
        return "none"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return str(value)


def field_help(f) -> str:
    """The field's help with its default, said once: fields whose default depends on the
    dataset or model (or on another field) already say so in their help."""
    text = f.metadata["help"]
    if "default" in text:
        return text
    return f"{text} (default: {default_text(f.default)})"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per config field; defaults are SUPPRESSed so we know what was given.

    Each flag is shown once, dashed. `mlflow run` passes undeclared -P values as
    `--field_name VALUE`, so the underscore spelling is accepted too, as a hidden option with
    the same dest: a second spelling beside every flag would double the help's length.
    """
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="YAML mapping of config fields; flags override it")
    groups = {key: parser.add_argument_group(title) for key, title in GROUP_TITLES.items()}
    for f in config_fields():
        group = groups[f.metadata.get("group", "run")]
        _add_field_flag(group, flag_name(f.name), f, field_help(f))
        if "_" in f.name:
            _add_field_flag(parser, "--" + f.name, f, argparse.SUPPRESS)
    # The unit-less spelling people try first; hidden, like the underscore aliases.
    parser.add_argument("--time-budget", dest="time_budget_s", default=argparse.SUPPRESS,
                        metavar="SECONDS", help=argparse.SUPPRESS)


def _add_field_flag(container, flag: str, f, help_text: str) -> None:
    if str(f.type) == "bool":
        container.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
    else:
        container.add_argument(flag, dest=f.name, default=argparse.SUPPRESS,
                               metavar=f.name.upper(), help=help_text)


def load_config_file(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError("config", path, "an existing YAML file", "--config")
    try:
        values = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        first_line = str(err).splitlines()[0]
        raise ConfigError("config", path, f"valid YAML ({first_line})", "--config") from None
    if not isinstance(values, dict):
        raise ConfigError("config", path, "a YAML mapping of config fields", "--config")
    return values


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """File values, then explicit flags; errors name where the bad value came from."""
    values: dict[str, Any] = {}
    file = getattr(args, "config", None)
    if file:
        values.update(load_config_file(file))
    names = {f.name for f in config_fields()}
    given = {k: v for k, v in vars(args).items() if k in names}
    values.update(given)
    try:
        return RunConfig.from_dict(values)
    except ConfigError as err:
        if err.field_name in given:
            source = "flag " + flag_name(err.field_name)
        else:
            source = file or "config"
        raise ConfigError(err.field_name, err.value, err.allowed, source) from None
