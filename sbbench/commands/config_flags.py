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


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per config field; defaults are SUPPRESSed so we know what was given."""
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="YAML mapping of config fields; flags override it")
    groups = {key: parser.add_argument_group(title) for key, title in GROUP_TITLES.items()}
    for f in config_fields():
        annotation = str(f.type)
        group = groups[f.metadata.get("group", "run")]
        help_text = f"{f.metadata['help']} (default: {f.default!r})"
        # `mlflow run` passes undeclared -P values as --field_name VALUE: accept that spelling.
        spellings = [flag_name(f.name)] + (["--" + f.name] if "_" in f.name else [])
        if annotation == "bool":
            group.add_argument(*spellings, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        else:
            group.add_argument(*spellings, dest=f.name, default=argparse.SUPPRESS,
                               metavar=f.name.upper(), help=help_text)
    # Aliases with units in the name people expect.
    parser.add_argument("--time-budget", dest="time_budget_s", default=argparse.SUPPRESS,
                        metavar="SECONDS", help="alias of --time-budget-s")


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
