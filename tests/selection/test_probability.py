"""The keep decision in isolation: the threshold form equals the rule U < max(p_min, F**beta)
draw for draw, on NumPy and torch alike; Random's decisions have U**beta's distribution; the
block-drawn stream is seeded and spans block boundaries."""

import math

import numpy as np
import pytest
import torch

from sbbench.selection.probability import (DrawStream, kept_positions, random_keeps,
                                           sb_keep_thresholds)

ARRAY_KINDS = [np.asarray, torch.as_tensor]


def spec_probability(fraction_below: np.ndarray, beta: float, p_min: float) -> np.ndarray:
    """The rule of docs/methods.md, written the obvious way."""
    return np.maximum(p_min, fraction_below ** beta)


def uniforms(n: int, seed: int) -> np.ndarray:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed)).numpy()


@pytest.mark.parametrize("array", ARRAY_KINDS)
@pytest.mark.parametrize("beta, p_min", [(1.0, 0.0), (3.0, 0.0), (3.0, 0.1), (0.5, 0.3),
                                         (0.0, 0.0), (1000.0, 0.2)])
def test_thresholds_decide_exactly_like_the_spec_probability(array, beta, p_min):
    u = uniforms(50_000, seed=0)
    # Percentiles as the window produces them (k / R), plus the extremes 0 and 1.
    fraction = np.concatenate(([0.0, 1.0], np.arange(50_000 - 2) % 1025 / 1024))
    by_threshold = np.asarray(array(fraction) > sb_keep_thresholds(array(u), beta, p_min))
    by_probability = u < spec_probability(fraction, beta, p_min)
    # Identical but for draws within float rounding of the boundary U = P.
    boundary = np.abs(u - spec_probability(fraction, beta, p_min)) < 1e-5
    assert np.array_equal(by_threshold[~boundary], by_probability[~boundary])
    assert boundary.mean() < 1e-3
    if beta == 0:
        assert by_threshold.all()           # P = 0 ** 0 = 1: keep everything
    if p_min == 0 and beta > 0:
        assert not by_threshold[0]          # F = 0: P = 0, never kept
    assert by_threshold[1]                  # F = 1: P = 1, always kept


@pytest.mark.parametrize("array", ARRAY_KINDS)
def test_random_keeps_have_the_distribution_of_u_to_the_beta(array):
    n, beta = 200_000, 2.0
    u, v = uniforms(n, seed=1), uniforms(n, seed=2)
    keep = np.asarray(random_keeps(array(u), array(v), beta))
    assert np.array_equal(keep, u < v ** beta)
    # P(U < V^b) = E[V^b] = 1/(b+1).
    p = 1 / (beta + 1)
    assert abs(keep.mean() - p) < 4 * math.sqrt(p * (1 - p) / n)
    floored = np.asarray(random_keeps(array(u), array(v), 1000.0, p_min=0.2))
    assert abs(floored.mean() - 0.2) < 4 * math.sqrt(0.16 / n) + 1e-3  # E[max(.2, V^1000)]


def test_kept_positions_are_the_true_entries_in_order():
    mask = uniforms(1000, seed=3) < 0.3
    kept = kept_positions(torch.from_numpy(mask))
    assert kept.dtype == torch.int64
    assert kept.tolist() == np.flatnonzero(mask).tolist()
    assert kept_positions(torch.zeros(5, dtype=torch.bool)).numel() == 0


@pytest.mark.parametrize("as_numpy", [True, False])
@pytest.mark.parametrize("sizes", [[7, 7, 7], [5, 30, 1, 64], [100]])
def test_draw_stream_is_seeded_and_spans_block_boundaries(sizes, as_numpy):
    def draws(seed):
        stream = DrawStream(torch.Generator().manual_seed(seed), "cpu", lambda u: u,
                            block_size=16, as_numpy=as_numpy)
        return [np.asarray(stream.take(n)) for n in sizes]

    first, again, other = draws(3), draws(3), draws(4)
    assert [len(chunk) for chunk in first] == sizes
    assert all(chunk.dtype == np.float32 for chunk in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    values = np.concatenate(first)
    assert values.min() >= 0 and values.max() < 1
    assert len(np.unique(values)) == len(values)  # no draw is handed out twice


def test_draw_stream_applies_the_block_transform_to_its_own_generator_only():
    def stream(seed):
        return DrawStream(torch.Generator().manual_seed(seed), "cpu",
                          lambda u, v: torch.stack((u, v), dim=1), uniforms_per_draw=2,
                          block_size=8)

    def ten_draws(global_seed):
        torch.manual_seed(global_seed)  # the global stream moves; ours must not care
        draws = stream(5)
        return torch.cat([draws.take(5), draws.take(5)]).numpy()  # across a block boundary

    first, second = ten_draws(0), ten_draws(99)
    assert first.shape == (10, 2) and np.array_equal(first, second)
    assert not np.array_equal(first[:, 0], first[:, 1])  # two independent uniforms per draw
    with pytest.raises(ValueError, match="block_size"):
        DrawStream(torch.Generator(), "cpu", lambda u: u, block_size=0)


@pytest.mark.parametrize("uniforms_per_draw", [1, 2])
def test_one_large_take_hands_out_what_smaller_takes_would(uniforms_per_draw):
    """StaleSB takes a whole epoch's draws at once: they must be the draws its forward batches
    would have taken one by one (blocks are always drawn whole, in order)."""
    def stream():
        return DrawStream(torch.Generator().manual_seed(8), "cpu",
                          lambda *u: sum(u[1:], u[0] * 10), uniforms_per_draw,
                          block_size=16, as_numpy=True)

    pieces, whole = stream(), stream()
    small = np.concatenate([pieces.take(n) for n in (7, 30, 63, 5)])
    large = np.concatenate([whole.take(100), whole.take(5)])
    assert np.array_equal(small, large)
