"""`sbbench COMMAND --help`: one spelling per flag, one default per option, and the hidden
underscore spellings (what `mlflow run` passes for undeclared -P values) still parse."""

from __future__ import annotations

import argparse
import re

import pytest

from sbbench.cli import build_parser
from sbbench.commands.config_flags import config_from_args

OPTION_LINE = re.compile(r"^  (-{1,2}\w)")   # an option's first help line (two-space indent)
FLAG = re.compile(r"(?<![\w-])--[A-Za-z0-9][\w-]*")


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


@pytest.fixture(autouse=True)
def wide_help(monkeypatch):
    # argparse wraps at the terminal width: wide lines keep each "(default: X)" on one line.
    monkeypatch.setenv("COLUMNS", "200")


def spelling(flag: str) -> str:
    return flag.lstrip("-").replace("_", "-")


def visible_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]


def option_blocks(help_text: str) -> list[str]:
    """The help text of each option: its first line and the wrapped lines under it."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in help_text.splitlines():
        if OPTION_LINE.match(line):
            current = [line]
            blocks.append(current)
        elif current is not None and line.startswith("   "):
            current.append(line)
        else:   # a blank line or a group title ends the option
            current = None
    return ["\n".join(b) for b in blocks if b]


def test_every_subcommand_is_checked():
    assert {"train", "sweep", "analyze", "bench"} <= set(subcommand_parsers())


@pytest.mark.parametrize("command", ["train", "sweep", "analyze", "bench", "verdict"])
def test_each_flag_has_one_spelling_in_help(command):
    parser = subcommand_parsers()[command]
    help_text = parser.format_help()
    assert not [f for f in FLAG.findall(help_text) if "_" in f], help_text
    seen: dict[str, str] = {}
    for action in visible_actions(parser):
        names = {spelling(s) for s in action.option_strings if s.startswith("--")}  # -h: short
        if isinstance(action, argparse.BooleanOptionalAction):
            names = {n.removeprefix("no-") for n in names}   # --x / --no-x: one flag
        assert len(names) == 1, action.option_strings
        # Two visible options writing the same value are two spellings of one flag.
        assert action.dest not in seen, (action.option_strings, seen.get(action.dest))
        seen[action.dest] = action.option_strings[0]


@pytest.mark.parametrize("command", ["train", "sweep", "analyze", "bench", "verdict"])
def test_each_option_states_its_default_at_most_once(command):
    blocks = option_blocks(subcommand_parsers()[command].format_help())
    assert len(blocks) > 5
    for block in blocks:
        assert block.count("(default:") <= 1, block


def test_train_help_shows_plain_defaults():
    help_text = subcommand_parsers()["train"].format_help()
    assert "--method METHOD" in help_text and "(default: sb)" in help_text
    assert "(default: batch_size)" in help_text
    assert "--svhn-extra, --no-svhn-extra" in help_text


@pytest.mark.parametrize("command", ["train", "bench"])
@pytest.mark.parametrize("dashed, underscored", [
    (["--p-min", "0.2"], ["--p_min", "0.2"]),
    (["--history-size", "64"], ["--history_size", "64"]),
    (["--lr-milestones", "2,4"], ["--lr_milestones", "2,4"]),
    (["--svhn-extra"], ["--svhn_extra"]),
    (["--no-svhn-extra"], ["--no-svhn_extra"]),
    (["--time-budget-s", "30"], ["--time-budget", "30"]),
])
def test_hidden_spellings_parse_to_the_same_value(command, dashed, underscored):
    parser = build_parser()
    by_dash = parser.parse_args([command, *dashed])
    by_underscore = parser.parse_args([command, *underscored])
    assert vars(by_dash) == vars(by_underscore)
    assert config_from_args(by_dash) == config_from_args(by_underscore)


def test_hidden_negated_underscore_spelling_parses():
    args = build_parser().parse_args(["train", "--no-svhn_extra", "--p_min", "0.1"])
    config = config_from_args(args)
    assert config.svhn_extra is False and config.p_min == 0.1
