"""Ablation panels appear exactly for the swept axes present (no MLflow)."""

from __future__ import annotations

from sbbench.analysis import figures as F


def comp(method, beta=None, staleness=None, speedup=1.5):
    config = {"batch_size": "128"}
    if beta is not None:
        config["beta"] = str(beta)
    if staleness is not None:
        config["staleness"] = str(staleness)
    return {"workload": "w", "label": f"{method} {beta} {staleness}", "method": method,
            "baseline": "traditional", "target_index": 0, "config": config,
            "workload_params": {"label_noise": "0.0"}, "speedup": speedup, "ci_low": 1.0,
            "ci_high": 2.0, "final_error_diff": 0.001}


def test_ablation_panels_for_swept_axes_only(tmp_path):
    comparisons = [comp("sb", beta=b) for b in (1, 2, 3)]
    comparisons += [comp("stale_sb", beta=3, staleness=n) for n in (2, 3)]
    phases = [{"workload": "w", "label": c["label"], "s": 0.3, "f": 0.5} for c in comparisons]
    figures = F.ablation_panels(comparisons, phases, [], tmp_path)
    names = sorted(f.path.name for f in figures)
    # beta varies; staleness varies (plain SB counts as n = 1); batch size and noise do not
    assert names == ["ablation__beta.png", "ablation__staleness.png"]
    assert all(f.path.stat().st_size > 1000 for f in figures)


def test_ablation_panels_flag_underpowered_speedups(tmp_path):
    """Issue 12 point 9: a comparison too small to test is flagged wherever it appears."""
    comparisons = [comp("sb", beta=b) for b in (1, 2, 3)]
    comparisons[0]["underpowered"] = True
    (fig,) = F.ablation_panels(comparisons, [], [], tmp_path)
    flags = {p["beta"]: p["underpowered"] for p in fig.data["points"]}
    assert flags == {1: True, 2: False, 3: False}
