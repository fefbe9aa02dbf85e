"""Command-line errors every subcommand shares: one line on stderr, exit code 2, nothing written."""
import pytest

from superlens.cli import main


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
    from superlens.cli import active_config, build_parser

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
