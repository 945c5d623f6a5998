"""Compiled CPU kernels for SB's per-forward-batch bookkeeping (numba, NumPy arrays in place).

Why compiled: right after a forward pass, every distinct library call costs 5-20 us on a small
CPU (cold instruction caches; 1-2 us in a tight loop). SB's bookkeeping written as NumPy calls
(window update, sort, percentile, decision, nonzero, three gathers, queue) made about fifteen
of them per forward batch, ~120 us, 4% of an SB epoch on the default workload. One compiled call
does the whole step: docs/performance.md, step 7.

Layouts shared with the Python wrappers (`loss_window.NumpyLossWindow`,
`backprop_queue.CpuBackpropQueue`):
- window: `ring` (capacity,) float32 in arrival order; `sorted_buffers` (5, capacity) float32:
  rows 0 and 1 alternate between the window sorted and the target of the next merge, rows 2
  and 3 are scratch for a batch's new and evicted values, row 4 the radix sort's second buffer
  (nothing is allocated per batch); `window_state` int64 [size, next ring position, current
  sorted row, then the radix sort's 256 counters].
- queue: `queue_ids`, `queue_x`, `queue_y` with one row per queued example (FIFO from row 0);
  `queue_state` int64 [count].
NaN ranks as the largest loss: it is stored and ranked as +inf.
"""

from __future__ import annotations

import numba
import numpy as np

SIZE, NEXT, CURRENT = 0, 1, 2   # window_state fields
COUNT = 0                       # queue_state field
SORTED_ROWS = 5                 # sorted_buffers rows: see the module docstring
RADIX_BUCKETS = 256             # one byte of a float32 key per radix pass
WINDOW_STATE_LENGTH = 3 + RADIX_BUCKETS   # the three fields, then the radix sort's counters
# Below this many values an insertion sort beats the radix sort's fixed cost (4 passes over
# 256 counters); above it the radix sort is ~3x faster than np.sort on 128 losses.
SMALL_SORT = 32
# A window longer than this many times its edits (new + evicted values) is merged by block
# copies between binary-searched edit points, a shorter one element by element (window 1,024
# with 128 + 128 edits: elements; 65,536: blocks).
BLOCK_MERGE_RATIO = 8

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)
# Inlined into each caller at compile time (numba IR): small helpers on the per-batch path.
_inlined = numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")


@_jit
def _ranked(value):
    """The float32 value a loss is stored and ranked as (NaN -> +inf)."""
    if value != value:
        return np.float32(np.inf)
    return np.float32(value)


@_jit
def _count_below(sorted_values, size, value):
    """Entries of sorted_values[:size] strictly below value (searchsorted, side='left')."""
    return _lower_bound(sorted_values, 0, size, value)


@_jit
def _lower_bound(sorted_values, low, high, value):
    """The first position in [low, high) whose value is >= value (high if none)."""
    while low < high:
        middle = (low + high) >> 1
        if sorted_values[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


@_jit
def _upper_bound(sorted_values, low, high, value):
    """The first position in [low, high) whose value is > value (high if none)."""
    while low < high:
        middle = (low + high) >> 1
        if sorted_values[middle] <= value:
            low = middle + 1
        else:
            high = middle
    return low


@_jit
def _sort_in_place(values, spare, counters):
    """Sort float32 values (no NaN) in place; `spare` is scratch of at least their length and
    `counters` of RADIX_BUCKETS. Equal values compare equal whatever their order, so any
    correct sort gives the window the same contents."""
    n = values.shape[0]
    if n <= SMALL_SORT:
        for i in range(1, n):
            value, j = values[i], i
            while j > 0 and values[j - 1] > value:
                values[j] = values[j - 1]
                j -= 1
            values[j] = value
        return
    # LSD radix sort on the bits, mapped so that unsigned order is float order: flip every bit
    # of a negative number, only the sign bit of a positive one.
    keys, other = values.view(np.uint32), spare[:n].view(np.uint32)
    sign = np.uint32(0x80000000)
    for i in range(n):
        key = keys[i]
        keys[i] = ~key if key & sign else key | sign
    source, target, in_spare = keys, other, False
    for shift in range(0, 32, 8):
        counters[:] = 0
        for i in range(n):
            counters[(source[i] >> shift) & 0xFF] += 1
        if counters[(source[0] >> shift) & 0xFF] == n:
            continue  # every key has this byte (the exponent byte of similar losses): no-op
        total = 0
        for digit in range(RADIX_BUCKETS):
            count = counters[digit]
            counters[digit] = total
            total += count
        for i in range(n):
            digit = (source[i] >> shift) & 0xFF
            target[counters[digit]] = source[i]
            counters[digit] += 1
        source, target, in_spare = target, source, not in_spare
    if in_spare:
        keys[:] = other
    for i in range(n):
        key = keys[i]
        keys[i] = key ^ sign if key & sign else ~key


@_inlined
def _merge_by_elements(source, size, target, new_sorted, evicted):
    """target <- source[:size] minus one copy of each evicted value, plus the new values, in
    one pass over the window (both lists sorted; every evicted value is in the window).
    Returns the new size."""
    m, n_evict = new_sorted.shape[0], evicted.shape[0]
    read = skipped = merged = written = 0
    while read < size:
        value = source[read]
        read += 1
        if skipped < n_evict and value == evicted[skipped]:
            skipped += 1
            continue
        while merged < m and new_sorted[merged] < value:
            target[written] = new_sorted[merged]
            written += 1
            merged += 1
        target[written] = value
        written += 1
    while merged < m:
        target[written] = new_sorted[merged]
        written += 1
        merged += 1
    return written


@_jit
def _merge_by_blocks(source, size, target, new_sorted, evicted):
    """The same window as `_merge_by_elements`, for a window much longer than its edits: each
    edit's place by binary search, the unchanged runs between edits copied as blocks:
    O((m + k) log R) comparisons plus one block copy, instead of R branchy steps."""
    m, n_evict = new_sorted.shape[0], evicted.shape[0]
    read = written = merged = skipped = 0
    while merged < m or skipped < n_evict:
        if skipped < n_evict and (merged == m or evicted[skipped] <= new_sorted[merged]):
            # Delete the first copy at or after `read`: earlier equal copies are gone already.
            edit = _lower_bound(source, read, size, evicted[skipped])
            written = _copy_run(source, read, edit, target, written)
            read = edit + 1
            skipped += 1
        else:
            edit = _upper_bound(source, read, size, new_sorted[merged])
            written = _copy_run(source, read, edit, target, written)
            read = edit
            target[written] = new_sorted[merged]
            written += 1
            merged += 1
    return _copy_run(source, read, size, target, written)


@_jit
def _copy_run(source, start, end, target, written):
    """target[written:] <- source[start:end]; returns the new write position."""
    run = end - start
    target[written:written + run] = source[start:end]
    return written + run


@_jit
def window_add(ring, sorted_buffers, window_state, losses):
    """Append losses in order, evicting the oldest beyond the capacity: O(R + m log m)."""
    capacity = ring.shape[0]
    m = losses.shape[0]
    if m == 0:
        return
    if m >= capacity:
        # Only the last `capacity` values stay.
        for i in range(capacity):
            ring[i] = _ranked(losses[m - capacity + i])
        current = window_state[CURRENT]
        sorted_buffers[current, :] = np.sort(ring)
        window_state[SIZE] = capacity
        window_state[NEXT] = 0
        return
    size, position, current = window_state[SIZE], window_state[NEXT], window_state[CURRENT]
    # Scratch rows 2 and 3 (m < capacity here): no allocation per batch.
    new_sorted = sorted_buffers[2, :m]
    spare, counters = sorted_buffers[4], window_state[3:]
    for t in range(m):
        new_sorted[t] = _ranked(losses[t])
    _sort_in_place(new_sorted, spare, counters)
    # Free slots are written first (from `position`), then the writes wrap onto the oldest
    # values: the last n_evict writes evict.
    n_evict = max(0, size + m - capacity)
    evicted = sorted_buffers[3, :n_evict]
    for k in range(n_evict):
        slot = position + m - n_evict + k
        if slot >= capacity:
            slot -= capacity
        evicted[k] = ring[slot]
    _sort_in_place(evicted, spare, counters)
    for t in range(m):
        ring[position] = _ranked(losses[t])
        position += 1
        if position == capacity:
            position = 0
    source, target = sorted_buffers[current], sorted_buffers[1 - current]
    if size > BLOCK_MERGE_RATIO * (m + n_evict):
        written = _merge_by_blocks(source, size, target, new_sorted, evicted)
    else:
        written = _merge_by_elements(source, size, target, new_sorted, evicted)
    window_state[SIZE] = written
    window_state[NEXT] = position
    window_state[CURRENT] = 1 - current


@_jit
def window_fraction_below(sorted_buffers, window_state, losses, out):
    """out[t] = fraction of the window strictly below losses[t] (0 for an empty window)."""
    size = window_state[SIZE]
    if size == 0:
        out[:] = 0.0
        return
    current = sorted_buffers[window_state[CURRENT]]
    scale = 1.0 / size
    for t in range(losses.shape[0]):
        out[t] = _count_below(current, size, _ranked(losses[t])) * scale


@_inlined
def _kept(sorted_window, size, scale, loss, threshold):
    """SB's keep decision: the fraction of the window strictly below the loss, F, exceeds the
    example's threshold (`probability.sb_keep_thresholds`: the event U < max(p_min, F ** beta))."""
    return _count_below(sorted_window, size, _ranked(loss)) * scale > threshold


@_inlined
def _copy_row(queue_ids, queue_x, queue_y, row, ids, x, y, t):
    """Queue row `row` <- example t of (ids, x, y): one example travels with its input and
    label wherever the queue copies it. Inlined into its callers at compile time."""
    queue_ids[row] = ids[t]
    queue_x[row] = x[t]
    queue_y[row] = y[t]


@_jit
def rank_select_enqueue(ring, sorted_buffers, window_state, losses, thresholds,
                        ids, x, y, queue_ids, queue_x, queue_y, queue_state):
    """SB's whole step for one forward batch; returns the number of examples queued, or -1
    (and changes nothing) when the queue has fewer free rows than the batch has examples.

    The batch enters the window, then each example is ranked against it (fraction strictly
    below, F) and kept iff F > its threshold (`probability.sb_keep_thresholds`: the same event
    as U < max(p_min, F ** beta)). Kept examples are appended to the queue in batch order.
    """
    count = queue_state[COUNT]
    if count + losses.shape[0] > queue_ids.shape[0]:
        return -1
    window_add(ring, sorted_buffers, window_state, losses)
    size = window_state[SIZE]
    if size == 0:
        return count
    current = sorted_buffers[window_state[CURRENT]]
    scale = 1.0 / size
    for t in range(losses.shape[0]):
        if _kept(current, size, scale, losses[t], thresholds[t]):
            _copy_row(queue_ids, queue_x, queue_y, count, ids, x, y, t)
            count += 1
    queue_state[COUNT] = count
    return count


@_jit
def plan_kept(ring, sorted_buffers, window_state, losses, thresholds, forward_batch, kept):
    """A whole epoch of SB decisions from losses known in advance (StaleSB's stale epochs):
    forward batch by forward batch, exactly as `rank_select_enqueue` would decide them (the
    batch enters the window, then each example is ranked against it). Writes the kept
    positions to kept[:n] in order and returns n."""
    n_kept = 0
    for start in range(0, losses.shape[0], forward_batch):
        end = min(start + forward_batch, losses.shape[0])
        window_add(ring, sorted_buffers, window_state, losses[start:end])
        size = window_state[SIZE]
        current = sorted_buffers[window_state[CURRENT]]
        scale = 1.0 / size
        for t in range(start, end):
            if _kept(current, size, scale, losses[t], thresholds[t]):
                kept[n_kept] = t
                n_kept += 1
    return n_kept


@_jit
def queue_append(queue_ids, queue_x, queue_y, queue_state, ids, x, y):
    """Append every row (priming epochs, and pushes from outside the fused step)."""
    count = queue_state[COUNT]
    for t in range(ids.shape[0]):
        _copy_row(queue_ids, queue_x, queue_y, count, ids, x, y, t)
        count += 1
    queue_state[COUNT] = count
    return count


@_jit
def queue_pop_front(queue_ids, queue_x, queue_y, queue_state, n):
    """Copies of the first n queued rows; the rest moves to the front (FIFO)."""
    count = queue_state[COUNT]
    ids, x, y = queue_ids[:n].copy(), queue_x[:n].copy(), queue_y[:n].copy()
    for i in range(count - n):  # forward copy: the target row is always before its source
        _copy_row(queue_ids, queue_x, queue_y, i, queue_ids, queue_x, queue_y, n + i)
    queue_state[COUNT] = count - n
    return ids, x, y
