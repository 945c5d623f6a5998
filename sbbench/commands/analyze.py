"""`sbbench analyze`: time-to-target speedups, significance tests, figures and reports."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sbbench.analysis import add_analyze_arguments

    add_analyze_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from sbbench.analysis import run_analyze_command

    return run_analyze_command(args)
