"""Run a generated CPU loop on slices of the pixels, in parallel threads.

The generated functions are ``nogil``, so plain Python threads run them truly in parallel. One
call per slice costs a few microseconds, nothing next to a slice of a million pixels.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numba
import numpy as np

__all__ = ["run_cpu"]

MIN_SLICE_PX = 1 << 16
"""Below 64 Ki px per slice the thread hand-off costs more than the arithmetic."""
SLICES_PER_THREAD = 4
"""A few slices per thread even out threads that get descheduled on a busy node."""

_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None
_pool_lock = threading.Lock()


def _get_pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_key
    key = (os.getpid(), threads)  # a forked child must not reuse the parent's dead threads
    with _pool_lock:
        if _pool is None or _pool_key != key:
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="harvest-kernel")
            _pool_key = key
        return _pool


def run_cpu(fused: Callable[..., Any], n: int, inputs: Sequence[tuple[np.ndarray, list[Any]]],
            outputs: Sequence[np.ndarray], tail: Sequence[Any]) -> None:
    """Call ``fused(len, *band arrays and scalars, *outputs, *tail)`` over ``[0, n)`` in slices.

    Args:
        fused: the generated function.
        n: pixel count; every array is 1-D of length ``n``.
        inputs: per band, its flat array and the scalars that follow it in the signature.
        outputs: flat output arrays.
        tail: trailing scalars (int16 packing parameters).
    """
    threads = max(1, numba.get_num_threads())

    def call(start: int, stop: int) -> None:
        args: list[Any] = [stop - start]
        for arr, scalars in inputs:
            args.append(arr[start:stop])
            args += scalars
        args += [o[start:stop] for o in outputs]
        args += tail
        fused(*args)

    if threads == 1 or n < 2 * MIN_SLICE_PX:
        call(0, n)
        return
    if not getattr(fused, "signatures", None):
        call(0, 0)  # compile (or load from cache) once, before threads race for it
    step = max(MIN_SLICE_PX, -(-n // (threads * SLICES_PER_THREAD)))
    pool = _get_pool(threads)
    futures = [pool.submit(call, start, min(start + step, n)) for start in range(0, n, step)]
    for future in futures:
        future.result()
