"""Command line: `sbbench train | sweep | analyze | bench | nightly`.

Every bad input becomes one line on stderr and exit code 2, before any compute and before any
MLflow run is created. SIGTERM is turned into SystemExit so a killed run ends KILLED, not RUNNING.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

EXIT_OK = 0
EXIT_FAILED_RUN = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# Subcommands living in their own modules: each has add_arguments(parser) and run(args) -> int.
SUBCOMMANDS = {
    "train": ("sbbench.commands.train", "train one tracked run"),
    "sweep": ("sbbench.commands.sweep", "run an Optuna study of training runs"),
    "analyze": ("sbbench.commands.analyze", "time-to-target speedups, tests, figures, report"),
    "bench": ("sbbench.commands.bench", "measure the selection core against its bound"),
    "nightly": ("sbbench.commands.nightly", "the pinned nightly suite against its history "
                "(exit 0 fine, 1 regression, 2 could not measure)"),
}


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean 'the user gave a bad input' (exit 2, one line)."""
    from sbbench.config import ConfigError
    from sbbench.data import DatasetUnavailableError
    from sbbench.tracking import TrackingUnavailableError

    errors: list[type[BaseException]] = [ConfigError, DatasetUnavailableError,
                                         TrackingUnavailableError]
    for module, name in (("sbbench.sweep.study", "StudyError"),
                         ("sbbench.sweep.storage", "StorageUnavailableError"),
                         ("sbbench.analysis", "AnalysisInputError"),
                         ("sbbench.nightly.history", "NightlyInputError")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _raise_system_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbbench",
        description="Benchmark Selective-Backprop and related example-selection methods.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue  # that subcommand is not part of this installation
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _raise_system_exit)
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except bad_input_errors() as err:
        print(f"sbbench {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"sbbench {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
