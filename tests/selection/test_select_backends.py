"""The compiled CPU step and the torch-operator step make the same decisions, batch for batch.

The torch backend is the one the queue tests record push by push (and the one CUDA runs); the
compiled one is the CPU default. Same seed, same losses: every backward batch must hold the same
examples in the same order, with x and y travelling with them.
"""

import pytest
import torch

from sbbench.selection.backprop_queue import BackpropQueue, CpuBackpropQueue
from sbbench.selection.select_step import DeviceStep, FusedCpuStep, use_cpu_kernels
from tests.selection.helpers import Driver, FakeScorer, exponential_losses, make

N = 997  # not a multiple of any batch size


def batches_of_a_run(backend, method_name, epochs=3, **settings):
    losses = exponential_losses(N, seed=7)
    # Heavy ties: the merge must drop exactly one copy of each evicted value.
    losses[::5] = 1.0
    method = make(method_name, num_train=N, backend=backend, **settings)
    driver = Driver(method, FakeScorer(losses), train_losses=exponential_losses(N, seed=8))
    epochs_run = [driver.run_epoch(epoch) for epoch in range(epochs)]
    return method, [[(b.ids.tolist(), b.x[:, 0].tolist(), b.y.tolist()) for b in epoch.batches]
                    for epoch in epochs_run]


@pytest.mark.parametrize("method_name", ["sb", "random", "stale_sb"])
@pytest.mark.parametrize("settings", [
    {},
    {"forward_batch_size": 7, "history_size": 50},          # window not a power of two
    {"forward_batch_size": 64, "partial_batch": "carry"},   # several batches per push
    {"beta": 1.0, "p_min": 0.2, "prime_epochs": 1, "history_size": 5000},  # never full
    {"beta": 0.0, "staleness": 2, "history_size": 3},       # keep all; batch > window
])
def test_compiled_and_torch_backends_emit_identical_batches(method_name, settings):
    if method_name == "stale_sb":
        settings = {"staleness": 2, **settings}
    compiled, compiled_batches = batches_of_a_run("auto", method_name, **settings)
    reference, reference_batches = batches_of_a_run("torch", method_name, **settings)
    assert isinstance(compiled.step, FusedCpuStep) and isinstance(reference.step, DeviceStep)
    assert isinstance(compiled.queue, CpuBackpropQueue)
    assert isinstance(reference.queue, BackpropQueue)
    assert compiled_batches == reference_batches
    kept = sum(len(ids) for epoch in compiled_batches for ids, _, _ in epoch)
    assert 0 < kept  # not vacuous
    if settings.get("beta", 3.0) > 0:
        assert kept < 3 * N
    assert torch.equal(compiled.history.sorted_values(), reference.history.sorted_values())
    assert len(compiled.queue) == len(reference.queue)


def test_cpu_queue_cuts_exact_fifo_batches_and_grows():
    queue, pushed, emitted, next_id = CpuBackpropQueue(5), [], [], 0
    for size in [3, 0, 1, 5, 17, 2, 40, 4, 5, 1]:
        ids = torch.arange(next_id, next_id + size)
        next_id += size
        pushed += ids.tolist()
        for batch in queue.push(ids, ids.float().unsqueeze(1) * 10, ids % 3):
            assert len(batch) == 5
            assert torch.equal(batch.x[:, 0], batch.ids.float() * 10)
            assert torch.equal(batch.y, batch.ids % 3)
            emitted += batch.ids.tolist()
        assert len(queue) == len(pushed) - len(emitted) < 5
    last = queue.flush()
    emitted += last.ids.tolist() if last is not None else []
    assert emitted == pushed and len(queue) == 0 and queue.flush() is None


def test_cpu_queue_batches_do_not_alias_its_rows():
    queue = CpuBackpropQueue(2)
    ids = torch.arange(3)
    (first,) = queue.push(ids, ids.float().unsqueeze(1), ids)
    queue.push(torch.tensor([7, 8]), torch.tensor([[7.0], [8.0]]), torch.tensor([7, 8]))
    assert first.ids.tolist() == [0, 1] and first.x[:, 0].tolist() == [0.0, 1.0]


def test_cpu_queue_refuses_a_different_example_shape_while_holding_examples():
    queue = CpuBackpropQueue(4)
    queue.push(torch.arange(2), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="queue holds examples of shape"):
        queue.push(torch.arange(2), torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))


def test_backend_choice():
    assert use_cpu_kernels("cpu", "auto") and not use_cpu_kernels("cpu", "torch")
    assert not use_cpu_kernels("cuda", "auto")
    with pytest.raises(ValueError, match="selection backend='numba'"):
        use_cpu_kernels("cpu", "numba")


@pytest.mark.parametrize("method_name", ["sb", "stale_sb", "random"])
@pytest.mark.parametrize("forward_batch_size", [None, 80])
def test_warm_up_compiles_everything_a_run_calls(tiny, method_name, forward_batch_size):
    """Kernels compile in the loop's constructor, not on the training clock: with compiling
    switched off after it, a whole run (priming, selection, last partial batch, flush) finds
    every signature it needs."""
    from sbbench import tracking
    from sbbench.config import RunConfig
    from sbbench.selection import cpu_kernels
    from sbbench.train.run import build_training

    config = RunConfig.from_dict({**tiny, "method": method_name, "prime_epochs": 1,
                                  "epochs": 3, "forward_batch_size": forward_batch_size})
    loop = build_training(config, tracking.NullTracker(), torch.device("cpu"))
    assert isinstance(loop.method.step, FusedCpuStep)
    # (StaleSB: epoch 0 primes, 1 refreshes, 2 is stale and planned by plan_kept.)
    kernels = (cpu_kernels.rank_select_enqueue, cpu_kernels.queue_append,
               cpu_kernels.queue_pop_front, cpu_kernels.plan_kept)
    for kernel in kernels:
        kernel.disable_compile()
    try:
        outcome = loop.run()
    finally:
        for kernel in kernels:
            kernel.disable_compile(False)
    assert 0 < outcome.final["total_examples_backpropped"] < outcome.final["total_examples_seen"]
