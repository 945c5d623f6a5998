"""`sbbench verdict` on planted studies in a real (temporary sqlite) MLflow store: the verdicts
follow the truths planted, missing studies read "not run yet", and every run id is listed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sbbench.cli import main
from sbbench.verdict import rules
from sbbench.verdict.claims import HARD_TEXT, ROBUST_TEXT, SB_RANDOM, SPEEDUP_CLAIMS
from sbbench.verdict.power import MAX_SEEDS, min_rank_n, seeds_to_settle

TEXT = {c.key: c.text for c in SPEEDUP_CLAIMS}


def claim(result, key_or_text: str, target: str = "t1"):
    text = TEXT.get(key_or_text, key_or_text)
    rows = [r for r in result.claims if r.claim == text
            and (not r.target or r.target.startswith(target) or r.target == "whole run")]
    assert rows, [r.claim for r in result.claims]
    return rows[0]


def test_planted_2x_faster_is_reproduced(verdicts):
    fast = verdicts["fast"]
    sb = claim(fast, "sb_traditional")
    assert sb.verdict == rules.REPRODUCED, sb
    assert 1.5 <= sb.extra["speedup"] <= 2.6 and sb.extra["ci_low"] > 1.0
    assert sb.n == "8 vs 8" and "(Holm)" in sb.p and sb.extra["p_faster"] < 0.05
    assert claim(fast, "stale_sb_traditional").verdict == rules.REPRODUCED
    assert claim(fast, "sb_kath18").verdict == rules.REPRODUCED
    stale_sb = claim(fast, "stale_sb_sb")          # computed by the verdict, not the analysis
    assert stale_sb.verdict == rules.REPRODUCED and 1.5 < stale_sb.extra["speedup"] < 2.7
    hard = claim(fast, HARD_TEXT)
    assert hard.verdict == rules.REPRODUCED
    assert min(hard.extra["sb_shares"]) > max(hard.extra["control_shares"])
    robust = claim(fast, ROBUST_TEXT)
    assert robust.verdict == rules.REPRODUCED and "10.0%" in robust.reason
    random_rows = [r for r in fast.claims if r.claim == SB_RANDOM.text]
    assert len(random_rows) == 2 and random_rows[0].verdict.startswith(rules.REPRODUCED)
    assert all("exploratory" in r.verdict for r in random_rows)


def test_planted_equal_is_inconclusive_with_a_seed_estimate(verdicts):
    equal = verdicts["equal"]
    for key in ("sb_kath18", "stale_sb_sb"):
        row = claim(equal, key)
        assert row.verdict == rules.INCONCLUSIVE, row
        assert 0.7 < row.extra["speedup"] < 1.4
        assert isinstance(row.extra["seeds_needed"], int) and row.extra["seeds_needed"] > 8
        assert "per arm" in row.seeds
    # 1.5x is more than the interval allows: the claim is excluded, not merely unproven
    sb = claim(equal, "sb_traditional")
    assert sb.verdict in (rules.NOT_REPRODUCED, rules.INCONCLUSIVE)
    if sb.verdict == rules.NOT_REPRODUCED:
        assert "CI upper end" in sb.reason and sb.extra["ci_high"] < 1.5


def test_planted_slower_is_not_reproduced(verdicts):
    slower = verdicts["slower"]
    sb = claim(slower, "sb_traditional")
    assert sb.verdict == rules.NOT_REPRODUCED and "significantly slower" in sb.reason
    assert sb.extra["speedup"] < 0.8 and sb.extra["p_slower"] < 0.05
    assert claim(slower, "sb_kath18").verdict == rules.NOT_REPRODUCED
    # no StaleSB runs in this study: measured nothing, and says so
    assert claim(slower, "stale_sb_traditional").verdict == rules.NOT_MEASURED


def test_missing_studies_read_not_run_yet(verdicts):
    equal = verdicts["equal"]
    robust = claim(equal, ROBUST_TEXT)
    assert robust.verdict == rules.NOT_RUN
    text = equal.text
    for role in ("label_noise", "beta", "staleness"):
        assert f"| {role} | " in text
        assert re.search(rf"\| {role} \|[^\n]*not run yet", text), role
        assert f"# {role}: not run yet" in text


def test_no_study_at_all_gives_a_document_of_not_run_yet_rows(planted, tmp_path, capsys):
    out = tmp_path / "results.md"
    code = main(["verdict", "--tracking-uri", planted["uri"], "--experiment", "nothing-here",
                 "--out", str(out), "--work-dir", str(tmp_path / "work")])
    assert code == 0
    text = out.read_text()
    claims_table = text.split("## Claims")[1].split("## Verdict rules")[0]
    rows = [line for line in claims_table.splitlines() if line.startswith("| ") and
            not line.startswith("| claim")]
    assert len(rows) == 6 and all("**not run yet**" in line for line in rows)
    assert "Verdicts over the six claims: 6 not run yet" in text
    assert "not run yet" in capsys.readouterr().out


def test_an_unfinished_sweep_is_not_run_yet(planted, tmp_path):
    from mlflow import MlflowClient

    from sbbench.verdict import VerdictOptions, verdict
    from tests.analysis.conftest import log_run, traditional_curve
    from tests.verdict.conftest import experiment, sweep_parent

    client = MlflowClient(tracking_uri=planted["uri"])
    exp = experiment(client, tmp_path, "running")
    parent = sweep_parent(client, exp, "mnist1d")          # left RUNNING
    log_run(client, exp, method="traditional", seed=0, curve=traditional_curve(0),
            tags={"mlflow.parentRunId": parent, "sbbench.study": "mnist1d"})
    result = verdict(VerdictOptions(tracking_uri=planted["uri"], experiment="running",
                                    out=str(tmp_path / "results.md"),
                                    work_dir=str(tmp_path / "work")))
    assert claim(result, "sb_traditional").verdict == rules.NOT_RUN
    assert f"sweep parent run {parent} is RUNNING (1 of 1 training runs finished" in result.text
    assert parent in result.text and "--include-unfinished" in result.text


def test_every_run_id_is_in_the_document(verdicts, planted):
    text = verdicts["fast"].text
    studies = verdicts["fast"].studies
    for role in ("mnist1d", "label_noise"):
        assert planted["fast"][role]["parent"] in text
        assert studies[role].analysis_run_id and studies[role].analysis_run_id in text
    for ids in planted["fast"]["mnist1d"]["ids"].values():
        for run_id in ids:
            assert run_id in text
    for run_id in planted["fast"]["label_noise"]["ids"]["all"]:
        assert run_id in text
    assert f"--study-run mnist1d={planted['fast']['mnist1d']['parent']}" in text
    assert f"sbbench analyze --parent-run {planted['fast']['mnist1d']['parent']}" in text


def test_tuned_settings_come_from_the_tags(verdicts):
    text = verdicts["fast"].text
    tuned = text.split("## Tuned settings")[1].split("## Figures")[0]
    assert "| mnist1d | SB | lr=0.1 | tuning stage" in tuned
    assert "| mnist1d | StaleSB | lr=0.2 |" in tuned
    assert "| mnist1d | Traditional | not tuned |" in tuned
    assert "| label_noise | SB | not tuned |" in tuned


def test_figures_are_copied_beside_the_document_and_linked(verdicts):
    result = verdicts["fast"]
    folder = result.path.with_suffix("")
    names = {p.name.split("__")[0] for p in (folder / "mnist1d").glob("*.png")}
    assert {"error_vs_time", "kaplan_meier", "speedup_forest", "selection_probability"} <= names
    assert (folder / "label_noise" / "ablation__label_noise.png").is_file()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", result.text)
    assert links and all((result.path.parent / link).is_file() for link in links)


def test_rules_compute_and_setting_are_printed(verdicts):
    text = verdicts["fast"].text
    assert rules.RULES_MARKDOWN.strip() in text
    assert "training compute (sum of total_train_time_s)" in text
    compute = verdicts["fast"].studies["mnist1d"].compute()
    assert compute["runs"] == 40 and compute["train_time_s"] > 0
    assert f"{compute['train_time_s']:,.1f} s" in text
    setting = text.split("## What differs from the paper's setting")[1]
    assert "| dataset | CIFAR10, CIFAR100, SVHN (train + extra) | mnist1d |" in setting
    assert "| CPU threads | - | 1 |" in setting


def test_reuse_takes_the_logged_analysis(verdicts, planted, tmp_path):
    from sbbench.verdict import VerdictOptions, verdict

    first = verdicts["fast"]
    again = verdict(VerdictOptions(tracking_uri=planted["uri"], experiment="fast",
                                   out=str(tmp_path / "results.md"),
                                   work_dir=str(tmp_path / "work"), resamples=199,
                                   reuse_analysis=True))
    for role in ("mnist1d", "label_noise"):
        assert again.studies[role].analysis_reused
        assert again.studies[role].analysis_run_id == first.studies[role].analysis_run_id
    assert [(r.claim, r.verdict, r.speedup) for r in again.claims] == \
        [(r.claim, r.verdict, r.speedup) for r in first.claims]
    assert (tmp_path / "results" / "mnist1d").is_dir()


@pytest.mark.parametrize("argv, field", [
    (["--study-run", "cifar=abc"], "study_run"),
    (["--study-run", "mnist1d"], "study_run"),
    (["--study-run", "mnist1d=a", "--study-run", "mnist1d=b"], "study_run"),
    (["--resamples", "5"], "resamples"),
    (["--out", "results.txt"], "out"),
])
def test_bad_input_exits_2_naming_the_field(argv, field, planted, tmp_path, capsys):
    code = main(["verdict", "--tracking-uri", planted["uri"], "--work-dir", str(tmp_path),
                 *(["--out", str(tmp_path / "r.md")] if "--out" not in argv else []), *argv])
    assert code == 2
    assert f"invalid {field}=" in capsys.readouterr().err


def test_unknown_run_id_is_a_bad_input(planted, tmp_path, capsys):
    code = main(["verdict", "--tracking-uri", planted["uri"], "--out", str(tmp_path / "r.md"),
                 "--study-run", "mnist1d=" + "0" * 32])
    assert code == 2 and "no such run" in capsys.readouterr().err


# --- the rules and the seed estimate on their own -----------------------------------------------

def row(speedup, low, high, *, bound=None, n=8, underpowered=False):
    return {"speedup": speedup, "ci_low": low, "ci_high": high, "bound_direction": bound,
            "n": n, "n_baseline": n, "underpowered": underpowered}


def test_speedup_rules():
    sv = rules.speedup_verdict
    assert sv(row(1.6, 1.2, 2.0), 1.5, 0.01, 0.99).verdict == rules.REPRODUCED
    # significantly faster but 1.5x is outside the interval: not reproduced
    assert sv(row(1.1, 1.02, 1.3), 1.5, 0.01, 0.99).verdict == rules.NOT_REPRODUCED
    assert sv(row(0.6, 0.5, 0.8), 1.0, 0.99, 0.01).verdict == rules.NOT_REPRODUCED
    assert sv(row(1.2, 0.9, 1.7), 1.5, 0.2, 0.8).verdict == rules.INCONCLUSIVE
    assert sv(row(3.0, 2.0, 4.0, underpowered=True, n=3), 1.5, 0.01,
              0.99).verdict == rules.INCONCLUSIVE
    # a lower-bound interval (censored baseline) cannot exclude the claim from below ...
    assert sv(row(1.1, 1.0, 1.3, bound="lower"), 1.5, 0.2, 0.8).verdict == rules.INCONCLUSIVE
    # ... and an upper-bound one (censored method) cannot show the claimed size is reached
    assert sv(row(1.8, 1.2, 2.0, bound="upper"), 1.5, 0.01,
              0.99).verdict == rules.INCONCLUSIVE
    assert sv(row(1.8, 1.2, 2.0, bound="upper"), 1.0, 0.01, 0.99).verdict == rules.REPRODUCED


def test_seed_estimate_follows_the_normal_approximation():
    # n = 2 (z_0.95 + z_0.8)^2 sd^2 / log(1.2)^2 / (3/pi) = 35.06 -> 36
    n, why = seeds_to_settle(1.2, 1.0, 0.3)
    assert n == 36 and "faster" in why
    # a family of four: alpha / 4, more seeds
    assert seeds_to_settle(1.2, 1.0, 0.3, family_size=4)[0] > 36
    # below the claimed 1.5x: the interval excluding 1.5x may come first
    n_excl, why = seeds_to_settle(1.0001, 1.5, 0.3)
    assert "exclude 1.5x" in why and n_excl < 20
    assert seeds_to_settle(1.3, 1.0, None)[0] is None
    assert min_rank_n(0.05) == 5 and min_rank_n(0.05 / 4) >= 5
    assert seeds_to_settle(1.0001, 1.0, 0.5)[0] == MAX_SEEDS + 1    # "> 1000"
    assert seeds_to_settle(1.0, 1.0, 0.5)[0] is None                # no effect to detect


def test_document_path_and_figures_folder(verdicts):
    result = verdicts["fast"]
    assert result.path.name == "results.md" and result.path.is_file()
    assert Path(result.path.with_suffix("")).name == "results"


def test_a_choice_at_the_edge_of_the_tuning_grid_is_flagged():
    from sbbench.verdict.document import _edge_text
    from sbbench.verdict.studies import ChildRun

    def tuning_run(lr: float) -> ChildRun:
        return ChildRun(run_id=f"r{lr}", name="", method="traditional", status="FINISHED",
                        seed="100", stage="tuning", role="", tuned_values="", tuned_from="",
                        train_time_s=1.0, wall_time_s=1.0, params={"lr": str(lr)})

    grid = [tuning_run(lr) for lr in (0.05, 0.1, 0.2)]
    assert _edge_text(['{"lr": 0.2}'], grid).startswith("**yes**: lr=0.2 is the largest of 3")
    assert _edge_text(['{"lr": 0.05}'], grid).startswith("**yes**: lr=0.05 is the smallest")
    assert _edge_text(['{"lr": 0.1}'], grid) == "no"
    assert _edge_text(['{"lr": 0.2}'], grid[1:]) == "no"      # two values: no inside to speak of
    assert _edge_text(['{"lr": 0.2}'], []) == "-"             # adopted or untuned: no tuning runs
