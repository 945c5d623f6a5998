"""Measurement integrity (issue 12, analysis points 6-10), on planted truths.

Point 6 (confirmatory family): test_holm_runs_over_the_confirmatory_family_only,
    test_declared_confirmatory_family_replaces_the_default, test_bad_confirmatory_is_exit_2,
    test_family_helpers_without_a_store.
Point 7 (target source): test_default_targets_say_they_come_from_the_timed_seeds,
    test_reference_runs_set_the_targets_and_are_not_timed, test_target_from_a_parent_run,
    test_target_from_a_study, test_target_from_that_overlaps_the_timed_runs_is_refused,
    test_bad_target_from_is_exit_2.
Point 8 (two targets): test_two_factor_targets_by_default_the_first_primary.
Point 9 (underpowered): test_fewer_than_five_runs_in_an_arm_is_underpowered,
    test_reports_hide_every_p_value_of_underpowered_rows, test_one_footnote_for_underpowered_rows.
Point 10 (figures): test_kaplan_meier_figure_shows_the_ecdf_and_its_band,
    test_forest_plot_shows_every_speedup_and_ci, test_error_vs_examples_backpropped_figure,
    test_selection_probability_figure_from_per_example_tables.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from sbbench.analysis import AnalysisInputError, AnalyzeOptions, analyze
from tests.analysis.conftest import base_params, log_run, traditional_curve

WL_A = "mnist1d/mnist1d_cnn label_noise=0.0"
WL_B = "mnist1d/mnist1d_cnn label_noise=0.1"


def rows(summary, **match):
    return [c for c in summary["comparisons"]
            if all(c[k] == v for k, v in match.items())]


def figure(result, name: str, workload: str | None = None, suffix: str = ""):
    (fig,) = [f for f in result.figures if f.path.name.startswith(name + "__")
              and f.path.name.endswith(suffix + ".png")
              and (workload is None or f.section == workload)]
    return fig


def table_block(table_text: str, workload: str, target_index: int) -> str:
    blocks = [b for b in table_text.split("\n\n") if b.startswith(f"== {workload} |")]
    return blocks[target_index]


# --- point 8: two targets ----------------------------------------------------------------------

def test_two_factor_targets_by_default_the_first_primary(analysed):
    for wl in analysed.summary["workloads"]:
        primary, tight = wl["targets"]
        assert primary["index"] == 0 and primary["rule"].startswith("1.4 x")
        assert tight["index"] == 1 and tight["rule"].startswith("1.1 x")
        assert primary["value"] / tight["value"] == pytest.approx(1.4 / 1.1)
    # every comparison is made at both targets
    assert {c["target_index"] for c in analysed.summary["comparisons"]} == {0, 1}


# --- point 6: the confirmatory family ----------------------------------------------------------

def test_holm_runs_over_the_confirmatory_family_only(analysed):
    from sbbench.analysis import statistics as S

    summary = analysed.summary
    confirmatory = [c for c in summary["comparisons"] if c["family"] == "confirmatory"]
    # default: each method vs Traditional at the primary target, on its workload
    assert sorted((c["workload"], c["method"]) for c in confirmatory) == [
        (WL_A, "kath18"), (WL_A, "sb"), (WL_A, "stale_sb"), (WL_B, "sb")]
    assert all(c["baseline"] == "traditional" and c["target_index"] == 0 for c in confirmatory)
    assert summary["holm_family_size"] == 4 and summary["confirmatory_family"] == [
        "kath18:traditional", "sb:traditional", "stale_sb:traditional"]
    expected = S.holm([c["p_value"] for c in confirmatory])
    assert [c["p_holm"] for c in confirmatory] == pytest.approx(expected)
    exploratory = [c for c in summary["comparisons"] if c["family"] == "exploratory"]
    assert len(exploratory) == len(summary["comparisons"]) - 4
    assert all(c["p_holm"] is None and not c["significant"] and c["p_value"] is not None
               for c in exploratory)
    # SB at the tight target has a tiny raw p, yet it is exploratory: never starred
    tight_sb = rows(summary, workload=WL_A, method="sb", baseline="traditional",
                    target_index=1)[0]
    assert tight_sb["p_value"] < 0.01 and not tight_sb["significant"]
    block = table_block(analysed.table_text, WL_A, 1)
    assert f"{tight_sb['p_value']:.2g} expl" in block and "*" not in block.split("\n---")[0]
    data = json.loads(Path(analysed.report_paths["summary"]).read_text())
    assert {c["family"] for c in data["comparisons"]} == {"confirmatory", "exploratory"}
    md = Path(analysed.report_paths["markdown"]).read_text()
    assert "| exploratory |" in md and "| confirmatory |" in md


# --- point 7: where targets come from ----------------------------------------------------------

def test_default_targets_say_they_come_from_the_timed_seeds(analysed):
    source = analysed.summary["target_source"]
    assert source["from_timed_seeds"] is True
    assert source["timed_seed_workloads"] == [WL_A, WL_B]
    plain = "the timed Traditional seeds themselves"
    assert plain in source["text"]
    assert all(plain in w["target_source"] for w in analysed.summary["workloads"])
    header = table_block(analysed.table_text, WL_A, 0).splitlines()[:2]
    assert plain in "\n".join(header)
    for name in ("markdown", "html"):
        assert plain in Path(analysed.report_paths[name]).read_text()


REF_FLOOR, CAL_FLOOR, TIMED_FLOOR = 0.05, 0.04, 0.02


def finals(seeds, floor):
    return [traditional_curve(s, floor=floor)[-1]["val_error"] for s in seeds]


@pytest.fixture(scope="module")
def reference_store(tmp_path_factory):
    """5 timed Traditional (floor 0.02) and 5 SB (2x faster) runs, children of a 'timed' parent,
    3 Traditional runs tagged sbbench.role=reference (floor 0.05) in the same experiment, and a
    calibration parent with 3 Traditional runs (floor 0.04, study 'calibration') elsewhere."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("reference-store")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("timed", artifact_location=(root / "a").as_uri())
    timed_parent = client.create_run(exp, run_name="timed-parent").info.run_id
    child = {"mlflow.parentRunId": timed_parent}
    for seed in range(5):
        log_run(client, exp, method="traditional", seed=seed, tags=child,
                curve=traditional_curve(seed, floor=TIMED_FLOOR))
        log_run(client, exp, method="sb", seed=seed, tags=child,
                curve=traditional_curve(seed, floor=TIMED_FLOOR, compress=2.0, keep=1 / 3,
                                        select_forwards=True))
        log_run(client, exp, method="kath18", seed=seed, tags=child,
                curve=traditional_curve(seed, floor=TIMED_FLOOR, compress=1.25, keep=1 / 3,
                                        select_forwards=True))
    for seed in (100, 101, 102):
        log_run(client, exp, method="traditional", seed=seed, tags={"sbbench.role": "reference"},
                params=base_params("traditional", seed), curve=traditional_curve(
                    seed, floor=REF_FLOOR))
    other = client.create_experiment("calibration-exp", artifact_location=(root / "b").as_uri())
    cal_parent = client.create_run(other, run_name="calibration").info.run_id
    for seed in (200, 201, 202):
        log_run(client, other, method="traditional", seed=seed,
                tags={"mlflow.parentRunId": cal_parent, "sbbench.study": "calibration"},
                curve=traditional_curve(seed, floor=CAL_FLOOR))
    return {"uri": uri, "timed_parent": timed_parent, "calibration_parent": cal_parent}


def analyse_reference_store(store, tmp_path, **options):
    return analyze(AnalyzeOptions(experiment="timed", tracking_uri=store["uri"],
                                  out_dir=str(tmp_path), bootstrap_resamples=199,
                                  log_to_mlflow=False, **options))


def test_reference_runs_set_the_targets_and_are_not_timed(reference_store, tmp_path):
    result = analyse_reference_store(reference_store, tmp_path)
    (wl,) = result.summary["workloads"]
    median = float(np.median(finals((100, 101, 102), REF_FLOOR)))
    assert [t["value"] for t in wl["targets"]] == pytest.approx([1.4 * median, 1.1 * median])
    assert "reference runs (tagged sbbench.role=reference; n=3), not timed" in \
        wl["target_source"]
    assert result.summary["runs"]["reference"] == 3 and result.summary["runs"]["kept"] == 15
    sb = rows(result.summary, method="sb", baseline="traditional", target_index=0)[0]
    assert sb["n_baseline"] == 5                       # the reference seeds are not timed
    assert result.summary["target_source"]["from_timed_seeds"] is False
    assert "timed Traditional seeds themselves" not in result.table_text
    assert "not timed" in table_block(result.table_text, wl["label"], 0).splitlines()[1]


def test_target_from_a_parent_run(reference_store, tmp_path):
    parent = reference_store["calibration_parent"]
    result = analyse_reference_store(reference_store, tmp_path, target_from=parent)
    (wl,) = result.summary["workloads"]
    median = float(np.median(finals((200, 201, 202), CAL_FLOOR)))
    assert wl["targets"][0]["value"] == pytest.approx(1.4 * median)
    assert f"--target-from parent run {parent}" in wl["target_source"]
    assert rows(result.summary, method="sb", baseline="traditional",
                target_index=0)[0]["n_baseline"] == 5


def test_target_from_a_study(reference_store, tmp_path):
    result = analyse_reference_store(reference_store, tmp_path, target_from="calibration")
    (wl,) = result.summary["workloads"]
    median = float(np.median(finals((200, 201, 202), CAL_FLOOR)))
    assert wl["targets"][1]["value"] == pytest.approx(1.1 * median)
    assert "--target-from study 'calibration'" in wl["target_source"]
    assert result.summary["target_source"]["target_from"] == "calibration"


def test_target_from_that_overlaps_the_timed_runs_is_refused(reference_store, tmp_path):
    with pytest.raises(AnalysisInputError, match=r"^analysis: invalid target_from='[0-9a-f]+'; "
                       r"5 of its runs are also timed") as info:
        analyse_reference_store(reference_store, tmp_path,
                                target_from=reference_store["timed_parent"])
    assert "\n" not in str(info.value)
    with pytest.raises(AnalysisInputError, match="target_from='no-such-study'"):
        analyse_reference_store(reference_store, tmp_path, target_from="no-such-study")


def test_declared_confirmatory_family_replaces_the_default(reference_store, tmp_path):
    result = analyse_reference_store(reference_store, tmp_path,
                                     confirmatory=("kath18:traditional",))
    summary = result.summary
    (declared,) = [c for c in summary["comparisons"] if c["family"] == "confirmatory"]
    assert (declared["method"], declared["baseline"], declared["target_index"]) == \
        ("kath18", "traditional", 0)
    assert declared["holm_family_size"] == 1 and declared["p_holm"] == declared["p_value"]
    sb = rows(summary, method="sb", baseline="traditional", target_index=0)[0]
    assert sb["family"] == "exploratory" and sb["p_holm"] is None
    assert sb["p_value"] < 0.01 and not sb["significant"]      # raw p kept, never starred


@pytest.mark.parametrize("value", ["sb-traditional", "sb:sb", "nope:traditional",
                                   "sb:random"])
def test_bad_confirmatory_is_exit_2(synthetic_store, tmp_path, capsys, value):
    from sbbench.cli import main

    code = main(["analyze", "--tracking-uri", synthetic_store["uri"], "--out", str(tmp_path),
                 "--no-log", "--confirmatory", value])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and f"confirmatory={value!r}" in err
    assert "allowed: METHOD:BASELINE" in err


def test_bad_target_from_is_exit_2(synthetic_store, tmp_path, capsys):
    from sbbench.cli import main

    code = main(["analyze", "--tracking-uri", synthetic_store["uri"], "--out", str(tmp_path),
                 "--no-log", "--target-from", "no-such-study"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "target_from='no-such-study'" in err and "allowed:" in err


# --- point 9: underpowered comparisons ---------------------------------------------------------

def test_fewer_than_five_runs_in_an_arm_is_underpowered(analysed):
    from sbbench.analysis import statistics as S

    # 4 vs 8 runs: a rank test could reach p = 1/495, yet 4 seeds are too few to trust
    kath = rows(analysed.summary, workload=WL_A, method="kath18", baseline="traditional",
                target_index=0)[0]
    assert kath["n"] == 4 and kath["min_attainable_p"] < 0.05
    assert kath["underpowered"] is True and "fewer than 5" in kath["underpowered_reason"]
    assert not kath["significant"]
    four = S.compare_times(S.TimeSample.of([1.0, 1.1, 1.2, 1.3], [False] * 4),
                           S.TimeSample.of(np.linspace(2, 3, 6), [False] * 6),
                           n_resamples=199, rng=np.random.default_rng(0))
    assert four["underpowered"] is True
    five = S.compare_times(S.TimeSample.of(np.linspace(1, 1.4, 5), [False] * 5),
                           S.TimeSample.of(np.linspace(2, 3, 6), [False] * 6),
                           n_resamples=199, rng=np.random.default_rng(0))
    assert five["underpowered"] is False


def _markdown_rows(md: str, configuration: str, baseline: str) -> list[list[str]]:
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
             if line.startswith("| ")]
    return [c for c in cells if len(c) > 3 and c[1] == configuration and c[2] == baseline]


def test_reports_hide_every_p_value_of_underpowered_rows(analysed):
    from sbbench.analysis.report import COMPARISON_HEADERS

    md = Path(analysed.report_paths["markdown"]).read_text()
    html = Path(analysed.report_paths["html"]).read_text()
    p_columns = [COMPARISON_HEADERS.index(h) for h in
                 ("p (MWU)", "p: Holm / expl raw", "p log-rank", "p Welch log")]
    flagged = [c for c in analysed.summary["comparisons"] if c["underpowered"]]
    assert {(c["label"], c["baseline_label"]) for c in flagged} >= {
        ("SB", "Traditional"), ("Katharopoulos18", "Traditional"), ("SB", "Katharopoulos18")}
    for comp in flagged:
        for row in _markdown_rows(md, comp["label"], comp["baseline_label"]):
            if row[0] != f"{comp['target_error']:.4g}" or \
                    row[4] != f"{comp['n']} vs {comp['n_baseline']}":
                continue
            assert [row[i] for i in p_columns] == ["n too small"] * 4, row
    # the HTML renders the same cells
    sb_b = rows(analysed.summary, workload=WL_B, method="sb", baseline="traditional",
                target_index=0)[0]
    assert sb_b["p_logrank"] is not None
    html_rows = re.findall(r"<tr><td>([^<]*)</td><td>SB</td><td>Traditional</td>(.*?)</tr>",
                           html)
    b_rows = [cells for target, cells in html_rows if target == f"{sb_b['target_error']:.4g}"]
    assert b_rows and all(cells.count("<td>n too small</td>") == 4 for cells in b_rows)


def test_one_footnote_for_underpowered_rows(analysed):
    block = table_block(analysed.table_text, WL_A, 0)
    footnotes = [line for line in block.splitlines() if "n too small" in line
                 and line.startswith("!")]
    assert len(footnotes) == 1
    for pair in ("SB vs Katharopoulos18", "StaleSB vs Katharopoulos18",
                 "Katharopoulos18 vs Traditional"):
        assert pair in footnotes[0]


# --- point 10: figures show the data -----------------------------------------------------------

def test_kaplan_meier_figure_shows_the_ecdf_and_its_band(analysed):
    from scipy import stats

    fig = figure(analysed, "kaplan_meier", WL_A, suffix="__t0")
    config = [c for c in analysed.summary["configurations"] if c["workload"] == WL_A
              and c["method"] == "sb" and c["target_index"] == 0][0]
    times = [r["time_s"] for r in config["runs"]]
    censored = [not r["reached"] for r in config["runs"]]
    ecdf = stats.ecdf(stats.CensoredData.right_censored(times, censored)).cdf
    shown = fig.data["SB"]
    assert shown["time_s"] == pytest.approx(ecdf.quantiles)
    assert shown["probability"] == pytest.approx(ecdf.probabilities)
    band = ecdf.confidence_interval(0.95)
    assert shown["ci_low"] == pytest.approx(np.nan_to_num(band.low.evaluate(ecdf.quantiles),
                                                          nan=0.0))
    assert np.all(shown["ci_low"] <= shown["probability"] + 1e-12)
    assert np.all(shown["probability"] <= shown["ci_high"] + 1e-12)
    assert shown["censored_at"] and len(shown["censored_at"]) == 1      # the pruned trial
    assert fig.data["StaleSB"]["probability"].max() == 0.0


def test_forest_plot_shows_every_speedup_and_ci(analysed):
    fig = figure(analysed, "speedup_forest", WL_A)
    shown = {(r["label"], r["baseline"], r["target_index"]): r for r in fig.data["rows"]}
    comps = rows(analysed.summary, workload=WL_A)
    assert len(shown) == len(comps) == 10     # 3 vs Traditional + 2 vs K18, at 2 targets
    for c in comps:
        r = shown[(c["label"], c["baseline"], c["target_index"])]
        assert (r["speedup"], r["ci_low"], r["ci_high"]) == (c["speedup"], c["ci_low"],
                                                            c["ci_high"])
        assert r["family"] == c["family"] and r["underpowered"] == c["underpowered"]
    assert shown[("SB", "traditional", 0)]["ci_low"] < 2.0 < \
        shown[("SB", "traditional", 0)]["ci_high"]


def test_error_vs_examples_backpropped_figure(analysed):
    fig = figure(analysed, "error_vs_backpropped", WL_A)
    trad, sb = fig.data["Traditional"], fig.data["SB"]
    # SB backprops a third of the examples Traditional does for the same curve
    assert trad["x"].max() == pytest.approx(200_000, rel=0.02)
    assert 0.3 < sb["x"].max() / trad["x"].max() < 0.34
    common = np.intersect1d(trad["x"], sb["x"])
    common = common[common > 0]
    at = lambda curve, x: curve["median_error"][np.searchsorted(curve["x"], x)]  # noqa: E731
    assert all(at(sb, x) < at(trad, x) for x in common[1:])


def test_selection_probability_figure_from_per_example_tables(analysed):
    fig = figure(analysed, "selection_probability", WL_B)
    shown = fig.data["SB"]
    # planted: scored 8 times, backpropped 1-2 times when clean and 3-6 times when noisy
    assert shown["clean"] == pytest.approx(1.5 / 8, abs=0.02)
    assert shown["noisy"] == pytest.approx(4.5 / 8, abs=0.05)
    assert len(shown["probability"]) == 10
    assert shown["loss_percentile"] == pytest.approx(np.arange(5, 100, 10))
    # noisy examples (10%) have the highest losses: the top bins hold them, the others are clean
    assert shown["probability"][:8] == pytest.approx([1.5 / 8] * 8, abs=0.03)
    assert min(shown["probability"][-2:]) > 1.5 * max(shown["probability"][:8])
    # workload A has no per-example table: no figure, and a note saying so
    assert not [f for f in analysed.figures if f.path.name.startswith("selection_probability")
                and f.section == WL_A]
    assert any(w.startswith(WL_A) and "selection-probability figure is skipped" in w
               for w in analysed.summary["warnings"])


def test_family_helpers_without_a_store():
    from sbbench.analysis.api import (factors_with_primary, parse_comparison,
                                      unmatched_confirmatory)
    from sbbench.analysis.comparisons import apply_holm

    # a study's own factor becomes primary; the defaults follow without repeating it
    assert factors_with_primary(1.4) == (1.4, 1.1)
    assert factors_with_primary(1.2) == (1.2, 1.4, 1.1)
    assert parse_comparison(" SB:Traditional ") == ("sb", "traditional")
    comps = [{"method": m, "baseline": "traditional", "target_index": t, "p_value": p,
              "underpowered": u, "min_attainable_p": 1e-4}
             for m, t, p, u in (("sb", 0, 0.01, False), ("sb", 1, 0.001, False),
                                ("random", 0, 0.02, False), ("stale_sb", 0, 0.001, True))]
    family = frozenset({("sb", "traditional"), ("random", "traditional"),
                        ("stale_sb", "traditional")})
    apply_holm(comps, family)
    assert [c["family"] for c in comps] == ["confirmatory", "exploratory", "confirmatory",
                                            "confirmatory"]
    assert [c["p_holm"] for c in comps] == pytest.approx([0.02, None, 0.02, 0.003])
    # significant: confirmatory, adjusted p < alpha, and enough runs to be evidence
    assert [c["significant"] for c in comps] == [True, False, True, False]
    assert unmatched_confirmatory(family | {("kath18", "traditional")}, comps) == [
        "confirmatory kath18:traditional matches no comparison in these runs"]
