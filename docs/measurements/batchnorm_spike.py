"""The BatchNorm spike at SB's first selective epoch: running statistics or the step itself?

Per evaluation of one training run, the validation error is measured twice: with the running
statistics as trained (the paper's protocol, what a run logs) and with statistics re-estimated
on 32 uniformly drawn training batches (`recompute_bn_before_eval`'s estimator, restored
afterwards, so training is untouched). Traditional is measured the same way as the control.
Usage (prints one table per seed, then means over seeds):

    PYTHONPATH=. python docs/measurements/batchnorm_spike.py TRAIN_SIZE EPOCHS SEED [SEED ...]
"""

from __future__ import annotations

import sys

import torch

from sbbench.config import RunConfig
from sbbench.tracking import NullTracker
from sbbench.train.run import build_training, resolve_device


def measured_curve(config: RunConfig) -> list[tuple[int, float, float, float]]:
    """(examples seen, keep rate, error with running stats, error with re-estimated stats)."""
    loop = build_training(config, NullTracker(), resolve_device("cpu"))
    rows = []

    def both(metrics):  # runs inside the evaluation, clock paused
        with loop._recomputed_batchnorm():
            recomputed = loop._error_on(loop.data.val_x, loop.data.val_y)
        rows.append((int(metrics["examples_seen"]), metrics["keep_rate"], metrics["val_error"],
                     recomputed))

    loop.add_evaluation_hook(both)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        loop.run()
    return rows


def main() -> None:
    train_size, epochs = int(sys.argv[1]), float(sys.argv[2])
    seeds = [int(s) for s in sys.argv[3:]]
    torch.set_num_threads(1)
    totals: dict[tuple[str, int], list[float]] = {}
    for seed in seeds:
        base = dict(dataset="mnist1d", train_size=train_size, epochs=epochs, device="cpu",
                    eval_every_examples=train_size // 10, num_threads=1, seed=seed,
                    data_dir="data")
        sb = measured_curve(RunConfig.from_dict({**base, "method": "sb"}))
        trad = measured_curve(RunConfig.from_dict({**base, "method": "traditional"}))
        print(f"seed {seed}: mnist1d train_size {train_size}, batch 128, lr 0.05, SB beta 3, "
              "1 priming epoch")
        print(f"{'seen':>7} {'epoch':>5} {'SB keep':>7} {'SB running':>10} {'SB re-est':>9} "
              f"{'Trad running':>12} {'Trad re-est':>11}")
        for (seen, keep, run_e, re_e), (_, _, t_run, t_re) in zip(sb, trad):
            print(f"{seen:>7} {seen / train_size:>5.1f} {keep:>7.2f} {run_e:>10.2%} "
                  f"{re_e:>9.2%} {t_run:>12.2%} {t_re:>11.2%}")
            for key, value in (("sb_run", run_e), ("sb_re", re_e), ("t_run", t_run),
                               ("t_re", t_re)):
                totals.setdefault((key, seen), []).append(value)
    print(f"mean over seeds {seeds}")
    for seen in sorted({s for _, s in totals}):
        means = [sum(totals[(k, seen)]) / len(totals[(k, seen)])
                 for k in ("sb_run", "sb_re", "t_run", "t_re")]
        print(f"{seen:>7} {seen / train_size:>5.1f} " + " ".join(f"{m:>9.2%}" for m in means))


if __name__ == "__main__":
    main()
