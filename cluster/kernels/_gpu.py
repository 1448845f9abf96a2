"""Launching the generated numba.cuda kernels (numba.cuda itself is imported only when a GPU is used)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from cluster.kernels._device import is_device_array as _is_device
from cluster.kernels._registry import Kernel
from cluster.kernels._spec import OutputSpec, check_out_buffer

__all__ = ["run_gpu"]

THREADS_PER_BLOCK = 256
MAX_BLOCKS = 4096
"""Grid-stride loop: 4096 x 256 = 1 Mi threads fill a big GPU (H100: 132 SMs x 2048) and keep
launch cost flat for any tile size."""
UNROLL = 4
"""Load words per thread per round of the loop, loads first (see ``_codegen._gpu_loop``); at
most, see :func:`unroll_for`. On an H200 NDVI ran at 40 % of copy bandwidth with 1 and 47 %
with 4; the five-index pass was best with 2 (``benchmarks/kernels_gpu.py --sweep``)."""
PACK = 1
"""uint16 pixels per load word where the bands allow it (see :func:`pack_for`): 1, or 4 to read
4 pixels per 8-byte load. 4 gives the same bits on an H200 (checked on 120 Mpx); its speed is
not measured yet, so it is off by default."""
MAX_BODIES = 10
"""Copies of the per-pixel code in one round (kernels x unroll x pack): NVVM's compile time
grows with it (17 kernels x 4 took minutes), the speed gain stops at a few."""


def loop_shape(n_kernels: int, bands: list[Any], target: str) -> dict[str, int]:
    """``unroll`` and ``pack`` of the generated loop (both 1 on the CPU)."""
    if target != "gpu":
        return {"unroll": 1, "pack": 1}
    pack = pack_for(bands)
    return {"unroll": unroll_for(n_kernels, pack), "pack": pack}


def unroll_for(n_kernels: int, pack: int) -> int:
    """:data:`UNROLL`, lowered so a round holds at most :data:`MAX_BODIES` pixel bodies.

    >>> unroll_for(1, 1), unroll_for(5, 1), unroll_for(17, 1), unroll_for(1, 4)
    (4, 2, 1, 2)
    """
    return max(1, min(UNROLL, MAX_BODIES // (n_kernels * pack)))


def pack_for(arrays: list[Any]) -> int:
    """:data:`PACK` when every band is uint16, its pixel count a multiple of it and its device
    memory 8-byte aligned (host arrays are copied to aligned buffers); else 1."""
    if PACK == 1:
        return 1
    for arr in arrays:
        if arr.dtype != np.uint16 or arr.size % PACK:
            return 1
        cai = getattr(arr, "__cuda_array_interface__", None)
        if cai is not None and cai["data"][0] % (2 * PACK):
            return 1
    return PACK


def _to_device(value: Any) -> Any:
    """A numba device array viewing ``value`` (already on the GPU)."""
    from numba import cuda

    if hasattr(value, "copy_to_host"):
        return value  # numba's own (and the simulator's) device arrays
    return cuda.as_cuda_array(value)


def run_gpu(fused: Any, kernels: tuple[Kernel, ...], arrays: Mapping[str, Any],
            scalars: Mapping[str, list[Any]], out_args: list[Any],
            spec: OutputSpec, shape: tuple[int, ...],
            out: Mapping[str, Any] | None, unroll: int, pack: int) -> dict[str, Any]:
    """Run ``fused`` on the GPU; host inputs give host outputs, device inputs device outputs."""
    from numba import cuda

    needed = tuple(scalars)
    n = int(np.prod(shape, dtype=np.int64))
    on_device = any(_is_device(arrays[b]) for b in needed)
    cupy_in = any(type(arrays[b]).__module__.split(".")[0] == "cupy" for b in needed)
    args: list[Any] = [n]
    for band in needed:
        arr = arrays[band]
        d_arr = _to_device(arr) if _is_device(arr) else cuda.to_device(arr.reshape(-1))
        d_arr = d_arr.reshape(n) if d_arr.shape != (n,) else d_arr
        args.append(d_arr.view(np.uint64) if pack > 1 else d_arr)
        args += scalars[band]
    results: dict[str, Any] = {}
    copies: list[tuple[Any, np.ndarray]] = []
    for k in sorted(kernels, key=lambda k: k.name):  # the plan's (generated) order
        buf = None if out is None else out.get(k.name)
        if buf is not None:
            check_out_buffer(k.name, buf, spec, shape)
        if buf is not None and _is_device(buf):
            d_out = _to_device(buf).reshape(n)
            results[k.name] = buf
        else:
            d_out = _device_empty(n, spec.np_dtype, cupy_in)
            if buf is not None:
                copies.append((d_out, buf))
                results[k.name] = buf
            elif on_device:
                results[k.name] = _wrap(d_out.reshape(shape), cupy_in)
            else:
                copies.append((d_out, np.empty(shape, dtype=spec.np_dtype)))
                results[k.name] = copies[-1][1]
        args.append(d_out)
    args += out_args
    if n:
        per_block = THREADS_PER_BLOCK * unroll * pack
        blocks = min(MAX_BLOCKS, (n + per_block - 1) // per_block)
        fused[blocks, THREADS_PER_BLOCK](*args)
    for d_out, host in copies:
        d_out.copy_to_host(host.reshape(-1))
    return {k.name: results[k.name] for k in kernels}  # the caller's order, as on the CPU


def _device_empty(n: int, dtype: np.dtype, cupy_in: bool) -> Any:
    """A new device buffer; from CuPy's memory pool when the caller uses CuPy (a fresh
    cudaMalloc of a Sentinel-2-tile output costs about as much as the kernel itself)."""
    from numba import cuda

    if cupy_in:
        import cupy

        return cuda.as_cuda_array(cupy.empty(n, dtype=dtype))
    return cuda.device_array(n, dtype=dtype)


def _wrap(d_arr: Any, cupy_in: bool) -> Any:
    if not cupy_in:
        return d_arr
    import cupy  # only when the caller already uses CuPy

    return cupy.asarray(d_arr)
