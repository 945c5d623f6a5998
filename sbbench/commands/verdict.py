"""`sbbench verdict`: the paper's claims against finished studies, written to docs/results.md."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sbbench.verdict.api import add_verdict_arguments

    add_verdict_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from sbbench.verdict.api import run_verdict_command

    return run_verdict_command(args)
