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
