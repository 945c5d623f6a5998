"""Command line: `sbbench train | sweep | analyze | bench | verdict | nightly`.

Every bad input becomes one line on stderr and exit code 2, before any compute and before any
MLflow run is created. Ctrl-C exits 130 and SIGTERM 143, whatever the command was doing: the
signal is recorded (sbbench.stop_signals), so an interrupt that a library swallowed or turned into
another error still ends the command with the signal's code, never 0 or 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import Callable, Sequence

from sbbench import stop_signals

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
    "verdict": ("sbbench.commands.verdict",
                "the paper's claims against finished studies: docs/results.md"),
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
    stop_signals.install()
    command = ["sbbench"]  # grows to "sbbench <subcommand>" once the arguments are parsed
    try:
        return _run_command(argv, command)
    except BaseException:
        # Whatever a stop signal turned into on its way up (a KeyboardInterrupt, an error from
        # a half-imported module or a library's cleanup): the exit code is the signal's.
        if stop_signals.requested():
            return _interrupted(command[0])
        raise


def _run_command(argv: Sequence[str] | None, command: list[str]) -> int:
    try:
        with stop_signals.deferred():  # the subcommands import torch
            parser = build_parser()
        args = parser.parse_args(argv)
        command[0] = f"sbbench {args.command}"
        handler: Callable[[argparse.Namespace], int] = args.handler
        code = handler(args)
        stop_signals.raise_if_requested()  # a stop that some library swallowed
        return code
    except KeyboardInterrupt:
        return _interrupted(command[0])
    except Exception as err:
        if stop_signals.requested():
            raise
        if isinstance(err, bad_input_errors()):
            print(f"{command[0]}: error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


def _interrupted(command: str) -> int:
    for signum in stop_signals.STOP_SIGNALS:  # the message and the exit are not cut short
        signal.signal(signum, signal.SIG_IGN)
    code = stop_signals.exit_code()
    print(f"{command}: {'interrupted' if code == EXIT_INTERRUPTED else 'terminated'}",
          file=sys.stderr)
    stop_signals.install_handlers()  # a caller in the same process (a test) keeps them working
    return code


def entry_point() -> None:
    """The `sbbench` command (and `python -m sbbench.cli`): main's code as the exit status.

    After a stop signal the process leaves with `os._exit`, its output flushed: an interrupt
    that landed inside an extension module's import can leave CPython marked as having an
    unhandled KeyboardInterrupt, and it then kills itself with SIGINT at exit (seen: exit -2
    instead of 130 for a Ctrl-C about 1.3 s after start, in 2 of 16 tries). Every run was ended
    before `main` returned, so nothing is lost by skipping the interpreter's teardown."""
    code = main()
    if stop_signals.requested():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
