"""The command line explains itself: every flag has help with its default, allowed names come from
the registries, `sweep --help` describes a spec, `--version` works."""
import argparse

import pytest

from superlens.cli import build_parser, main


def _subparsers(ap):
    action = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("command", ["toy", "active", "report", "sweep", "measure"])
def test_every_flag_has_help_with_default(command):
    sp = _subparsers(build_parser([command]))[command]
    for a in sp._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        assert a.help, f"{command} {a.option_strings or a.dest}: no help"
        if a.option_strings and not a.required:
            assert "default" in a.help, f"{command} {a.option_strings}: no default in help"


def test_allowed_names_listed_from_registries(capsys):
    from typing import get_args

    from superlens.active.presets import PRESETS
    from superlens.active.strategies import available
    from superlens.config import Dataset

    with pytest.raises(SystemExit) as e:
        main(["active", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in [*available(), *get_args(Dataset), *PRESETS]:
        assert name in out, name


def test_sweep_help_describes_a_spec(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    for text in ("[base]", "[axes]", "log = [", "examples/", "study ="):
        assert text in out, text


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"superlens {version('superlens')}"
