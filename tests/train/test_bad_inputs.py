"""Bad input: one line naming field, value and what is allowed; exit 2; no run, no compute."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbbench.cli import main
from tests.conftest import all_runs


@pytest.mark.parametrize("flags, field", [
    (["--method", "magic"], "method"),
    (["--beta", "-1"], "beta"),
    (["--staleness", "0"], "staleness"),
    (["--batch-size", "0"], "batch_size"),
    (["--label-noise", "1.0"], "label_noise"),
    (["--label-noise", "-0.1"], "label_noise"),
    (["--lr", "abc"], "lr"),
    (["--model", "resnet18"], "model"),  # an image model on MNIST-1D
    (["--device", "tpu"], "device"),
    (["--score-mode", "sometimes"], "score_mode"),
    (["--dropout", "0.1"], "dropout"),  # cnn1d has no dropout: refused before the run exists
    (["--model", "mlp1d", "--model-width", "0"], "model_width"),
])
def test_bad_flag_exit_2_and_no_run(flags, field, tiny, tracking_uri, tmp_path, capsys):
    code = main(["train", "--data-dir", tiny["data_dir"], *flags, "--tracking-uri",
                 tracking_uri, "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"invalid {field}=" in err and "allowed" in err
    assert not Path(tracking_uri[len("sqlite:///"):]).exists()  # no store, no run


def test_bad_config_file(tmp_path, tracking_uri, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("method: sb\nbetta: 2\n")
    assert main(["train", "--config", str(config), "--tracking-uri", tracking_uri]) == 2
    err = capsys.readouterr().err
    assert "betta" in err and str(config) in err


def test_unreachable_tracking_server(tiny, capsys):
    # Port 9 (discard) on loopback: nothing listens there.
    code = main(["train", "--data-dir", tiny["data_dir"], "--tracking-uri",
                 "http://127.0.0.1:9", "--no-progress"])
    assert code == 2
    assert "unreachable" in capsys.readouterr().err


def test_missing_cifar_files(tmp_path, tracking_uri, capsys):
    code = main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nothing"),
                 "--tracking-uri", tracking_uri, "--device", "cpu", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cifar-10-batches-py" in err and "--download" in err
    assert all_runs(tracking_uri) == []


def test_flag_overrides_config_file(tmp_path):
    from sbbench.commands.config_flags import config_from_args
    from sbbench.cli import build_parser

    config = tmp_path / "run.yaml"
    config.write_text("method: stale_sb\nstaleness: 4\nbeta: 1\n")
    args = build_parser().parse_args(["train", "--config", str(config), "--beta", "2"])
    run_config = config_from_args(args)
    assert (run_config.method, run_config.staleness, run_config.beta) == ("stale_sb", 4, 2.0)
