"""End to end on the synthetic MLflow store of conftest.py (known truths)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sbbench.analysis import (AnalysisInputError, AnalyzeOptions, add_analyze_arguments,
                              analyze, run_analyze_command)
from sbbench.analysis.api import options_from_args
from sbbench.analysis.summary import REQUIRED_COMPARISON_KEYS

WL_A = "mnist1d/mnist1d_cnn label_noise=0.0"
WL_B = "mnist1d/mnist1d_cnn label_noise=0.1"


def comparison(summary, workload, method, baseline="traditional", target_index=0):
    (row,) = [c for c in summary["comparisons"] if c["workload"] == workload
              and c["method"] == method and c["baseline"] == baseline
              and c["target_index"] == target_index]
    return row


def config_row(summary, workload, method, target_index=0):
    (row,) = [c for c in summary["configurations"] if c["workload"] == workload
              and c["method"] == method and c["target_index"] == target_index]
    return row


def test_runs_are_classified_and_bookkeeping_runs_ignored(analysed, synthetic_store):
    runs = analysed.summary["runs"]
    # 8 trad + 8 sb + 8 stale (2 diverged) + 4 kath + 1 pruned + 6 noisy = 35 kept
    assert runs["kept"] == 35
    assert runs["by_outcome"] == {"ok": 32, "diverged": 2, "pruned": 1, "error": 1}
    assert runs["excluded"] == 1 and runs["ignored"] == 2   # sweep parent + old analysis run
    (excluded,) = analysed.summary["excluded_runs"]
    assert excluded["run_id"] == synthetic_store["ids"]["error"][0]
    assert "boom" in excluded["reason"]
    assert any("boom" in w for w in analysed.summary["warnings"])


def test_compressed_2x_method_has_speedup_ci_holding_2_and_is_significant(analysed):
    # Workload A's SB arm holds 8 runs that are Traditional's curves at half the training time,
    # plus one pruned trial (censored, ranked slower than every finished run).
    sb = comparison(analysed.summary, WL_A, "sb")
    assert sb["n"] == 9 and sb["n_baseline"] == 8 and sb["n_pruned"] == 1
    assert sb["ci_low"] < 2.0 < sb["ci_high"]
    assert sb["ci_low"] > 1.0
    assert sb["p_holm"] < 0.05 and sb["significant"] and not sb["underpowered"]
    assert sb["ci_is_bound"] and sb["bound_direction"] == "upper"
    assert sb["prob_improvement"] > 0.8
    # hardware-independent crossing: SB backprops a third of the examples
    assert sb["speedup_examples_backpropped"] > 2.5
    assert abs(sb["final_error_diff"]) < 1e-3


def test_never_reaching_method_keeps_its_runs_and_counts_diverged_ones(analysed):
    stale = config_row(analysed.summary, WL_A, "stale_sb")
    assert stale["n"] == 8 and stale["n_reached"] == 0 and stale["n_diverged"] == 2
    assert stale["success_rate"] == 0.0 and stale["success_ci_high"] < 0.5
    assert stale["median_time_s"] is None and stale["median_time_censored"] is True
    assert stale["n_final"] == 6                      # diverged runs have no final error
    comp = comparison(analysed.summary, WL_A, "stale_sb")
    assert comp["n"] == 8 and comp["success_rate"] == 0.0
    assert comp["speedup"] < 1.0 and comp["bound_direction"] == "upper"
    assert comp["p_value"] > 0.5 and not comp["significant"]
    assert comp["final_error_excluded_runs"] == 2
    diverged = [r for r in stale["runs"] if r["outcome"] == "diverged"]
    assert len(diverged) == 2 and not any(r["reached"] for r in diverged)


def test_kath18_is_a_second_baseline(analysed):
    vs_kath = comparison(analysed.summary, WL_A, "sb", baseline="kath18")
    assert vs_kath["n_baseline"] == 4 and vs_kath["speedup"] > 1.2
    kath = comparison(analysed.summary, WL_A, "kath18")
    assert kath["ci_low"] < 1.25 < kath["ci_high"]
    assert not [c for c in analysed.summary["comparisons"]
                if c["method"] == "kath18" and c["baseline"] == "kath18"]


def test_small_n_comparison_is_flagged_underpowered(analysed):
    comp = comparison(analysed.summary, WL_B, "sb")
    assert comp["n"] == 3 and comp["n_baseline"] == 3
    assert comp["underpowered"] is True
    assert comp["min_attainable_p"] == pytest.approx(0.05)
    assert comp["p_value"] is not None           # kept in JSON, flagged
    assert "SB vs Traditional (3 vs 3 runs, min attainable p = 0.05)" in analysed.table_text


def test_summary_json_is_strict_and_complete(analysed):
    path = analysed.report_paths["summary"]

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(Path(path).read_text(), parse_constant=refuse)
    assert data["comparisons"]
    for row in data["comparisons"]:
        for key in REQUIRED_COMPARISON_KEYS:
            assert key in row, key
        assert isinstance(row["config"], dict)
        assert {"ci_is_bound", "underpowered", "median_examples_backpropped_to_target"} <= \
            set(row)
    assert data["phases"] and data["pareto"] and data["geometric_means"]
    assert data["performance_profiles"]


def test_phase_bound_and_noise_share(analysed):
    (sb,) = [p for p in analysed.summary["phases"] if p["workload"] == WL_A
             and p["method"] == "sb"]
    # the synthetic phases: select = 15% of the clock, selection forward for every example seen
    assert sb["s"] == pytest.approx(1 / 3, abs=1e-3)
    assert sb["f"] == pytest.approx(1.0)
    r = (0.15 / 200_000) / (0.85 / 66_666)
    assert sb["r"] == pytest.approx(r, rel=1e-3)
    assert sb["bound_epoch_speedup"] == pytest.approx(1 / (r + 1 / 3), rel=1e-3)
    assert sb["bound_formula"] == "1/(r+s)"
    assert sb["measured_epoch_speedup"] == pytest.approx(2.0, rel=0.02)
    (sel,) = analysed.summary["selection"]
    assert sel["workload"] == WL_B and sel["n_runs"] == 3
    assert sel["share_data_noisy"] == pytest.approx(0.1)
    assert sel["share_backward_noisy"] > 0.2          # noisy examples backpropped 3x as often
    assert len(sel["per_class_selection_rate"]) == 10
    deciles = sel["per_loss_decile_selection_rate"]
    assert len(deciles) == 10 and deciles[-1] > deciles[0]


def test_pareto_front(analysed):
    front = {p["label"] for p in analysed.summary["pareto"] if p["workload"] == WL_A
             and p["on_front"]}
    assert "SB" in front and "StaleSB" not in front


def test_reports_and_figures_are_written(analysed):
    paths = analysed.report_paths
    assert list(paths) == [paths.html, paths.markdown, paths.summary, paths.figures]
    html = Path(paths["html"]).read_text()
    md = Path(paths["markdown"]).read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert "<img" in html and 'src="figures/' not in html              # self-contained
    figures = sorted(Path(paths["figures"]).glob("*.png"))
    names = {f.name.split("__")[0] for f in figures}
    assert {"error_vs_time", "time_to_target", "kaplan_meier", "phases", "pareto",
            "ablation", "performance_profile"} <= names
    for fig in figures:
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](figures/{fig.name})" in md
    assert "ablation__label_noise.png" in {f.name for f in figures}


def test_analysis_run_is_logged_and_never_loaded_as_a_result(analysed, synthetic_store,
                                                              tmp_path):
    from mlflow import MlflowClient

    from sbbench.analysis.headline import speedup_metric_key

    client = MlflowClient(tracking_uri=synthetic_store["uri"])
    run = client.get_run(analysed.analysis_run_id)
    assert run.data.tags["sbbench.kind"] == "analysis" and run.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "report.md", "summary.json", "figures"} <= artifacts
    # The headline numbers are metrics of the analysis run: sortable in the experiment table.
    comparisons = analysed.summary["comparisons"]
    headline = {k: v for k, v in run.data.metrics.items() if ".speedup." in f".{k}"}
    finite = [c for c in comparisons if c["speedup"] is not None and c["speedup"] == c["speedup"]
              and abs(c["speedup"]) != float("inf")]
    assert finite and len([k for k in headline if not k.endswith(("ci_low", "ci_high"))]) \
        == len(finite)
    several = len({c["workload"] for c in comparisons}) > 1
    for c in finite:
        key = speedup_metric_key(c, several)
        assert headline[key] == pytest.approx(c["speedup"])
        assert headline[key + ".ci_low"] <= headline[key] <= headline[key + ".ci_high"]
    again = analyze(AnalyzeOptions(tracking_uri=synthetic_store["uri"], out_dir=str(tmp_path),
                                   bootstrap_resamples=199, log_to_mlflow=False))
    assert again.summary["runs"]["kept"] == 35 and again.summary["runs"]["ignored"] == 3
    assert again.analysis_run_id is None


def test_absolute_targets_are_all_reported(synthetic_store, tmp_path):
    result = analyze(AnalyzeOptions(tracking_uri=synthetic_store["uri"], out_dir=str(tmp_path),
                                    target_errors=(0.1, 0.025), bootstrap_resamples=199,
                                    log_to_mlflow=False))
    targets = {c["target_error"] for c in result.summary["comparisons"]}
    assert targets == {0.1, 0.025}
    assert result.table_text.count("target val error <= 0.1 (absolute)") == 2
    # StaleSB (floor 0.3) reaches neither; SB reaches the easy one faster
    easy = [c for c in result.summary["comparisons"] if c["target_error"] == 0.1
            and c["method"] == "sb" and c["baseline"] == "traditional"
            and c["workload"] == WL_A][0]
    assert easy["success_rate"] == pytest.approx(8 / 9)


def test_parent_run_filter_and_no_runs_message(synthetic_store, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=synthetic_store["uri"])
    other = client.create_experiment("other-study",
                                     artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(other, run_name="empty-sweep")
    client.set_terminated(parent.info.run_id)
    result = analyze(AnalyzeOptions(tracking_uri=synthetic_store["uri"], out_dir=str(tmp_path),
                                    parent_run_id=parent.info.run_id, log_to_mlflow=False))
    assert result.table_text.startswith("no training runs to analyse")
    assert "\n" not in result.table_text
    assert json.loads(Path(result.report_paths["summary"]).read_text())["comparisons"] == []


def parse(argv):
    parser = argparse.ArgumentParser()
    add_analyze_arguments(parser)
    return parser.parse_args(argv)


def test_cli_defaults_and_command(synthetic_store, tmp_path, capsys):
    defaults = parse([])
    assert defaults.resamples >= 9999
    assert options_from_args(defaults).target_factors == (1.4, 1.1)
    assert defaults.out == "sbbench-out/analysis" and defaults.target_error is None
    # Absolute targets replace the factor rule, unless a factor is given as well.
    assert not options_from_args(parse(["--target-error", "0.05"])).factor_with_absolute
    both = options_from_args(parse(["--target-error", "0.05", "--target-factor", "2"]))
    assert both.factor_with_absolute and both.target_factors == (2.0,)
    # One word (as MLproject passes a parameter) or several.
    assert options_from_args(parse(["--target-factor", "1.4,1.2"])).target_factors == (1.4, 1.2)
    assert options_from_args(parse(["--target-factor", "1.3", "1.1"])).target_factors == \
        (1.3, 1.1)
    args = parse(["--tracking-uri", synthetic_store["uri"], "--out", str(tmp_path),
                  "--resamples", "199", "--no-log", "--study", "nope"])
    assert run_analyze_command(args) == 0
    out = capsys.readouterr().out
    assert "no training runs to analyse" in out and "study 'nope'" in out


@pytest.mark.parametrize("argv, field", [
    (["--target-factor", "-1"], "target_factor"),
    (["--target-error", "1.5"], "target_error"),
    (["--resamples", "5"], "resamples"),
    (["--seed", "-2"], "seed"),
    (["--experiment", "does-not-exist"], "experiment"),
    (["--parent-run", "0123456789abcdef"], "parent_run"),
    (["--target-factor", "1.4", "x"], "target_factor"),
    (["--target-factor", "1.4", "1.4"], "target_factor"),
    (["--confirmatory", "sb:traditional", "sb-kath18"], "confirmatory"),
    (["--target-from", "no-such-study"], "target_from"),
])
def test_bad_inputs_are_one_line_errors_naming_the_field(synthetic_store, tmp_path, argv,
                                                         field):
    args = parse(["--tracking-uri", synthetic_store["uri"], "--out", str(tmp_path), "--no-log",
                  *argv])
    with pytest.raises(AnalysisInputError) as info:
        run_analyze_command(args)
    message = str(info.value)
    assert f"{field}=" in message and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_missing_database_is_a_bad_input(tmp_path):
    with pytest.raises(AnalysisInputError, match="tracking_uri="):
        analyze(AnalyzeOptions(tracking_uri=f"sqlite:///{tmp_path}/absent.db",
                               out_dir=str(tmp_path / "out")))
    assert not (tmp_path / "absent.db").exists()
