"""The command line (superlens.cli): errors every subcommand shares (one line on stderr, exit code 2,
nothing written), and how it explains itself (every flag has help with its default, allowed names
come from the registries, `sweep --help` describes a spec, `--version` works)."""
import argparse

import pytest

from superlens.cli import build_parser, main


@pytest.mark.parametrize("argv, needle", [
    (["toy", "--out", "{out}", "--p", "abc"], "argument --p: invalid float value: 'abc'"),
    (["toyx", "--out", "{out}"], "invalid choice: 'toyx'"),
    (["toy", "--p", "0.1"], "required: --out"),
    (["toy", "--out", "{out}", "--lr", "inf"], "lr = inf"),
    (["toy", "--out", "{out}", "--loss-power", "nan"], "loss_power = nan"),
    (["active", "--out", "{out}", "--epochs", "1.5"], "argument --epochs: invalid int value"),
])
def test_bad_arguments_are_one_line_exit_2_and_write_nothing(argv, needle, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:  # argparse exits; a config error returns 2
        raise SystemExit(main([a.format(out=out) for a in argv]))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not out.exists()


def test_active_flags_reach_the_config():
    from superlens.cli import active_config

    cfg = active_config(build_parser().parse_args([
        "active", "--out", "x", "--optimizer", "sgd", "--no-augment", "--normalize", "none",
        "--image-size", "16", "--feature-layer", "features.3", "--dropout", "0.5",
        "--tsne-points", "300"]))
    assert (cfg.optimizer, cfg.augment, cfg.normalize, cfg.image_size, cfg.feature_layer,
            cfg.dropout, cfg.tsne_points) == ("sgd", False, "none", 16, "features.3", 0.5, 300)


def test_bad_active_flag_value_names_the_field(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["active", "--out", str(out), "--optimizer", "rmsprop"]) == 2
    err = capsys.readouterr().err
    assert "optimizer = 'rmsprop'" in err and "adam or sgd" in err and err.count("\n") == 1
    assert not out.exists()


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


def test_measure_help_names_every_spec_form_and_the_torchscript_rule(capsys):
    with pytest.raises(SystemExit) as e:
        main(["measure", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ("resnet18", "checkpoint.pt", "TorchScript file", "package.module:function",
                 "not supported on ScriptModules", "output.KEY", "every submodule of a scripted or "
                 "traced module", "scripted submodule and everything inside it cannot"):
        assert text in out, text
    from superlens.measures.sae import SAERecipe

    assert f"the SAE recipe's, {SAERecipe().max_gflop:g})" in out  # read, not copied
