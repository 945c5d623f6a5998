"""LossWindow against a brute-force reference: a Python list of the last R values."""

import math
import random

import numpy as np
import pytest
import torch

from sbbench.selection.loss_window import LossWindow, NumpyLossWindow, TorchLossWindow

BACKENDS = ["numpy", "torch"]


def brute_fraction_below(reference, queries):
    if not reference:
        return [0.0] * len(queries)
    return [sum(r < q for r in reference) / len(reference) for q in queries]


def random_batch(rng: random.Random, capacity: int, with_nan: bool) -> list[float]:
    # Sizes 0 .. 2R+3: empty batches, batches smaller than the free space, batches that wrap the
    # ring, and batches larger than the whole window.
    size = rng.randint(0, 2 * capacity + 3)
    values = []
    for _ in range(size):
        if with_nan and rng.random() < 0.1:
            values.append(float("nan"))
        elif rng.random() < 0.5:
            values.append(float(rng.randint(0, 5)))  # many exact duplicates
        else:
            values.append(rng.uniform(-1.0, 6.0))
    return values


def check_against_reference(window, reference, capacity, rng):
    assert len(window) == len(reference)
    # NaN is ranked as the largest value: the reference stores it as +inf.
    assert window.sorted_values().tolist() == sorted(reference)
    assert not torch.isnan(window.sorted_values()).any()
    queries = sorted({-2.0, 7.0, 0.0, 3.0, rng.uniform(-1, 6)} | set(reference[:3]))
    queries = [q for q in queries if not math.isinf(q)] + [float("nan")]
    as_ranked = [math.inf if math.isnan(q) else q for q in queries]
    got = window.fraction_below(torch.tensor(queries, dtype=torch.float32))
    assert got.dtype == torch.float32 and got.shape == (len(queries),)
    assert got.tolist() == pytest.approx(brute_fraction_below(reference, as_ranked), abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("capacity", [1, 2, 7, 64])
@pytest.mark.parametrize("with_nan", [False, True])
def test_matches_bruteforce_reference_on_random_streams(capacity, backend, with_nan):
    rng = random.Random(capacity * 10 + with_nan)
    window, reference = LossWindow(capacity, backend=backend), []
    check_against_reference(window, reference, capacity, rng)
    for _ in range(200):
        values = random_batch(rng, capacity, with_nan)
        # float32 round trip, so the reference holds exactly what the window holds.
        values = torch.tensor(values, dtype=torch.float32).tolist()
        window.add(torch.tensor(values))
        reference = (reference + [math.inf if math.isnan(v) else v for v in values])[-capacity:]
        check_against_reference(window, reference, capacity, rng)


@pytest.mark.parametrize("backend", BACKENDS)
def test_capacity_one_holds_the_last_value(backend):
    window = LossWindow(1, backend=backend)
    for value in [3.0, 1.0, 1.0, 5.0]:
        window.add(torch.tensor([value]))
        assert window.sorted_values().tolist() == [value]
        assert window.fraction_below(torch.tensor([0.0, value, 9.0])).tolist() == [0.0, 0.0, 1.0]
    window.add(torch.tensor([7.0, 2.0, 4.0]))  # a batch larger than the window: keep the last
    assert window.sorted_values().tolist() == [4.0] and len(window) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_window_ranks_everything_zero(backend):
    window = LossWindow(8, backend=backend)
    assert len(window) == 0
    got = window.fraction_below(torch.tensor([-1.0, 0.0, 2.0, float("nan"), float("inf")]))
    assert got.tolist() == [0.0] * 5 and got.dtype == torch.float32
    window.add(torch.empty(0))  # an empty batch leaves it empty
    assert len(window) == 0 and window.fraction_below(torch.tensor([1.0])).tolist() == [0.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_is_ranked_largest_and_leaves_no_trace(backend):
    window = LossWindow(4, backend=backend)
    window.add(torch.tensor([1.0, float("nan"), 2.0]))
    # NaN counts as larger than every finite loss, and a NaN query outranks them all.
    assert window.fraction_below(torch.tensor([float("nan"), 2.5, 1.5])).tolist() == \
        pytest.approx([2 / 3, 2 / 3, 1 / 3])
    window.add(torch.tensor([0.5, 0.7, 0.9]))  # evicts 1.0 and the NaN
    assert window.sorted_values().tolist() == pytest.approx([0.5, 0.7, 0.9, 2.0])
    assert window.fraction_below(torch.tensor([1.0, 3.0])).tolist() == [0.75, 1.0]
    window.add(torch.tensor([float("nan")] * 3 + [0.1]))  # batch as large as the window
    window.add(torch.tensor([0.2, 0.3, 0.4]))  # evicts the three NaNs
    assert window.sorted_values().tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4])


@pytest.mark.parametrize("backend", BACKENDS)
def test_does_not_alias_the_caller_tensor(backend):
    window = LossWindow(4, backend=backend)
    losses = torch.tensor([1.0, 2.0])
    window.add(losses)
    losses.fill_(100.0)
    assert window.sorted_values().tolist() == [1.0, 2.0]


def test_backends_agree_and_auto_picks_numpy_on_cpu():
    assert isinstance(LossWindow(4), NumpyLossWindow)
    assert isinstance(LossWindow(4, backend="torch"), TorchLossWindow)
    generator = np.random.default_rng(0)
    a, b = LossWindow(50, backend="numpy"), LossWindow(50, backend="torch")
    for _ in range(100):
        losses = torch.from_numpy(generator.exponential(size=generator.integers(1, 40))).float()
        a.add(losses)
        b.add(losses)
        query = torch.from_numpy(generator.exponential(size=20)).float()
        assert torch.equal(a.sorted_values(), b.sorted_values())
        assert torch.equal(a.fraction_below(query), b.fraction_below(query))


@pytest.mark.parametrize("capacity", [0, -3])
def test_capacity_must_be_positive(capacity):
    with pytest.raises(ValueError, match="history_size"):
        LossWindow(capacity)


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_window_with_many_duplicates_matches_reference(backend):
    """The merge drops exactly one copy per evicted value among many equal ones."""
    capacity = 4099
    rng = random.Random(5)
    window, reference = LossWindow(capacity, backend=backend), []
    for _ in range(60):
        size = rng.choice([1, 128, 700, capacity + 5])
        values = torch.tensor([float(rng.randint(0, 50)) for _ in range(size)])
        window.add(values)
        reference = (reference + values.tolist())[-capacity:]
        assert window.sorted_values().tolist() == sorted(reference)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("capacity", [3, 64, 5000])
def test_add_and_rank_is_add_then_fraction_below(backend, capacity):
    """The fused call of the selection path ranks each batch after appending it, exactly like
    the two separate calls (on float32 tensors and on other dtypes)."""
    rng = random.Random(capacity)
    fused, separate = LossWindow(capacity, backend=backend), LossWindow(capacity, backend=backend)
    assert len(fused.add_and_rank(torch.empty(0))) == 0  # an empty batch on an empty window
    for step in range(60):
        values = random_batch(rng, min(capacity, 200), with_nan=True)
        batch = torch.tensor(values, dtype=torch.float64 if step % 2 else torch.float32)
        ranked = fused.add_and_rank(batch)
        separate.add(batch)
        expected = separate.fraction_below(batch)
        assert len(ranked) == batch.numel()
        assert np.allclose(np.asarray(ranked.tolist(), dtype=float), expected.tolist(), atol=1e-6)
    assert fused.sorted_values().tolist() == separate.sorted_values().tolist()


@pytest.mark.parametrize("size", [0, 1, 2, 31, 32, 33, 128, 1000])
def test_compiled_sort_orders_like_numpy(size):
    """The window's sort: insertion sort for a few values, a radix sort on the float bits above
    (negatives, infinities, ties, losses sharing an exponent byte, which skip radix passes)."""
    from sbbench.selection import cpu_kernels

    rng = np.random.default_rng(size)
    cases = [rng.standard_normal(size) * 1000, rng.exponential(size=size),
             rng.integers(-3, 3, size=size), 1.0 + rng.random(size) * 1e-3]
    if size >= 2:
        cases.append(np.resize([np.inf, -np.inf, 0.0, 2.5], size))
    for values in cases:
        values = values.astype(np.float32)
        result = values.copy()
        counters = np.zeros(cpu_kernels.RADIX_BUCKETS, dtype=np.int64)
        cpu_kernels._sort_in_place(result, np.empty(size, dtype=np.float32), counters)
        assert np.array_equal(result, np.sort(values))


@pytest.mark.parametrize("seed", range(6))
def test_block_merge_equals_the_elementwise_merge(seed):
    """Large windows are merged by block copies between binary-searched edits: the same sorted
    window as the one-pass merge, whatever the ties (repeated values, evicting several copies,
    inserting values equal to evicted ones)."""
    from sbbench.selection import cpu_kernels

    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 3000))
    window = np.sort(rng.integers(0, 20 if seed % 2 else 10_000, size=size)
                     .astype(np.float32) / 7)
    evicted = np.sort(rng.choice(window, size=int(rng.integers(0, min(size, 300) + 1)),
                                 replace=False))
    new = np.sort(np.concatenate([rng.choice(window, size=5),
                                  rng.integers(-5, 30, size=int(rng.integers(0, 200)))
                                  .astype(np.float32) / 7]).astype(np.float32))
    outputs = []
    for merge in (cpu_kernels._merge_by_elements, cpu_kernels._merge_by_blocks):
        target = np.full(size + new.size, np.nan, dtype=np.float32)
        written = merge(window, size, target, new, evicted)
        outputs.append(target[:written])
    remaining = list(window)
    for value in evicted:
        remaining.remove(value)
    expected = np.sort(np.concatenate([np.asarray(remaining, dtype=np.float32), new]))
    assert np.array_equal(outputs[0], expected) and np.array_equal(outputs[1], expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_window_with_small_batches_matches_reference(backend):
    """A window far longer than its batches (the block-merge path), with many duplicates."""
    rng = random.Random(5)
    capacity = 2000
    window, reference = LossWindow(capacity, backend=backend), []
    for _ in range(300):
        batch = [rng.randint(0, 30) / 4 for _ in range(rng.randint(1, 40))]  # exact in float32
        window.add(torch.tensor(batch))
        reference = (reference + batch)[-capacity:]
    assert window.sorted_values().tolist() == sorted(reference)
