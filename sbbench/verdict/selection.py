"""What SB spends its backward passes on, per run, from the runs' per_example.csv.gz: the share
on the highest-loss quartile and the share on mislabelled examples, SB against Random."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from sbbench.analysis.costs import MAX_PER_EXAMPLE_RUNS
from sbbench.analysis.loading import load_per_example

UNIFORM_TOP_QUARTILE = 0.25


def top_quartile_share(table: pd.DataFrame) -> float | None:
    """Share of the run's backward passes spent on the 25% of examples with the highest last
    recorded loss (examples without a loss are left out)."""
    if "times_backpropped" not in table or "last_loss" not in table:
        return None
    losses = pd.to_numeric(table["last_loss"], errors="coerce")
    backprops = pd.to_numeric(table["times_backpropped"], errors="coerce").fillna(0.0)
    keep = losses.notna()
    if keep.sum() < 4:
        return None
    losses, backprops = losses[keep], backprops[keep]
    total = float(backprops.sum())
    if total <= 0:
        return None
    top = losses.rank(method="first") > 0.75 * len(losses)
    return float(backprops[top].sum() / total)


def noisy_share(table: pd.DataFrame) -> tuple[float | None, float | None]:
    """(share of backward passes on mislabelled examples, their share of the data)."""
    if "is_noisy" not in table or "times_backpropped" not in table:
        return None, None
    noisy = table["is_noisy"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
    backprops = pd.to_numeric(table["times_backpropped"], errors="coerce").fillna(0.0).to_numpy()
    total = backprops.sum()
    return (float(backprops[noisy].sum() / total) if total > 0 else None,
            float(noisy.mean()) if noisy.size else None)


def per_run(client, run_ids: list[str]) -> list[dict]:
    """One entry per run whose per-example table could be read (at most
    MAX_PER_EXAMPLE_RUNS)."""
    out = []
    for run_id in run_ids[:MAX_PER_EXAMPLE_RUNS]:
        table = load_per_example(client, run_id)
        if table is None:
            continue
        share_noisy, data_noisy = noisy_share(table)
        out.append({"run_id": run_id, "top_quartile_share": top_quartile_share(table),
                    "noisy_share": share_noisy, "noisy_data_share": data_noisy})
    return out


def values(rows: list[dict], key: str) -> np.ndarray:
    return np.asarray([r[key] for r in rows if r.get(key) is not None
                       and math.isfinite(r[key])], dtype=float)


def one_sided_p(a: np.ndarray, b: np.ndarray | float) -> tuple[float | None, float | None, str]:
    """(p that a is larger, p that a is smaller, test): Mann-Whitney U against a sample, a
    Wilcoxon signed-rank test against a number."""
    if a.size == 0:
        return None, None, "none (no runs)"
    if isinstance(b, np.ndarray):
        if b.size == 0:
            return None, None, "none (no control runs)"
        if np.all(np.concatenate([a, b]) == a[0]):
            return 1.0, 1.0, "none (all equal)"
        more = stats.mannwhitneyu(a, b, alternative="greater").pvalue
        less = stats.mannwhitneyu(a, b, alternative="less").pvalue
        return float(more), float(less), "one-sided Mann-Whitney U"
    diff = a - b
    if np.all(diff == 0):
        return 1.0, 1.0, "none (all equal)"
    more = stats.wilcoxon(diff, alternative="greater").pvalue
    less = stats.wilcoxon(diff, alternative="less").pvalue
    return float(more), float(less), f"one-sided Wilcoxon signed-rank vs {b:g}"
