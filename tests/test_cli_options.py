"""`--sim` and `--name` hold wherever they are given: before the subcommand or after it."""

from __future__ import annotations

import pytest

from k3dtui.cli import DEFAULT_NAME, build_parser


@pytest.mark.parametrize(
    "argv",
    [
        ["--sim", "--name", "demo", "status"],
        ["status", "--sim", "--name", "demo"],
        ["--sim", "status", "--name", "demo"],
        ["--name", "demo", "scale", "--sim", "4"],
    ],
)
def test_sim_and_name_given_anywhere(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.sim is True and args.name == "demo"


def test_defaults_without_either() -> None:
    args = build_parser().parse_args(["status"])
    assert args.sim is False and args.name == DEFAULT_NAME
    top = build_parser().parse_args([])
    assert top.command is None and top.sim is False and top.name == DEFAULT_NAME
