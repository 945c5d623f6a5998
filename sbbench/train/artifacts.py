"""Files a run leaves behind: the per-example table and the error-vs-time plot."""

from __future__ import annotations

from pathlib import Path

import torch

from sbbench.data import DatasetSplits
from sbbench.train.counters import PerExampleStats


def write_per_example_table(path: Path, data: DatasetSplits, stats: PerExampleStats) -> Path:
    """id, label, clean_label, is_noisy, times_scored, times_backpropped, last_loss (csv.gz)."""
    import pandas as pd

    is_noisy = torch.zeros(data.num_train, dtype=torch.bool)
    is_noisy[data.noisy_ids.cpu()] = True
    table = pd.DataFrame({
        "id": range(data.num_train),
        "label": data.train_y.cpu().numpy(),
        "clean_label": data.train_clean_y.cpu().numpy(),
        "is_noisy": is_noisy.numpy(),
        "times_scored": stats.times_scored.cpu().numpy(),
        "times_backpropped": stats.times_backpropped.cpu().numpy(),
        "last_loss": stats.last_loss.cpu().numpy(),
    })
    table.to_csv(path, index=False, compression="gzip", float_format="%.6g")
    return path


def plot_error_vs_time(path: Path, curve: list[dict[str, float]], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [point["train_time_s"] for point in curve]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.plot(times, [p["val_error"] for p in curve], marker="o", ms=3, label="validation")
    tested = [p for p in curve if "test_error" in p]  # by default only the final model
    ax.plot([p["train_time_s"] for p in tested], [p["test_error"] for p in tested], marker="s",
            ms=4, linestyle="--" if len(tested) > 1 else "none", label="test")
    ax.set_xlabel("training clock (s)")
    ax.set_ylabel("error")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
