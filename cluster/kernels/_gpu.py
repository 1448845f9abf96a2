"""Launching the generated numba.cuda kernels (numba.cuda itself is imported only when a GPU is used)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from cluster.errors import KernelError
from cluster.kernels._device import is_device_array as _is_device
from cluster.kernels._registry import Kernel
from cluster.kernels._spec import OutputSpec, check_out_buffer

__all__ = ["DEFAULT_LAUNCH", "GpuLaunch", "run_gpu"]


@dataclass(frozen=True)
class GpuLaunch:
    """How the generated numba.cuda loop is shaped and launched; the defaults are measured ones.

    A setting, not a global: pass it to ``compute(..., gpu_launch=...)`` (it pickles, so a job
    config can carry it to the workers). Changing ``pack`` or ``unroll`` generates another loop.

    Example:
        One pixel per load, and a launch small enough to step through in the simulator:

        >>> launch = GpuLaunch(pack=1, threads_per_block=8, max_blocks=2)
        >>> launch.pack, launch.unroll_for(1, pack=1)
        (1, 2)
    """

    threads_per_block: int = 256
    max_blocks: int = 4096
    """Grid-stride loop: 4096 x 256 = 1 Mi threads fill a big GPU (H100: 132 SMs x 2048) and
    keep launch cost flat for any tile size."""
    unroll: int = 2
    """Load words per thread per round of the loop, loads first (see ``_codegen._gpu_loop``); at
    most, see :meth:`unroll_for`. H200, 2026-12-04, four pixels per load: NDVI 47 % of copy
    bandwidth with 1, 50 % with 2 (``benchmarks/kernels_gpu.py --sweep``)."""
    pack: int = 4
    """uint16 pixels per load word where the bands allow it (see :meth:`pack_for`): 4 reads 4
    pixels per 8-byte load and writes their results as whole 8-byte words; 1 reads one pixel
    per load. Same bits either way (checked on 120 Mpx). H200, 2026-12-04: NDVI 43 % -> 50 %,
    the five-index pass 50 % -> 56 % of copy bandwidth."""
    max_bodies: int = 20
    """Copies of the per-pixel code in one round (kernels x unroll x pack): NVVM's compile time
    grows with it (all 17 kernels at 4 pixels per load, 68 copies, did not compile in 4
    minutes), the speed gain stops at a few. Packing is dropped where it alone exceeds this."""

    # a job config takes this class as its ``gpu`` block: pydantic checks the fields by their
    # annotations, runs the checks below and refuses unknown keys
    __pydantic_config__ = {"extra": "forbid"}

    def __post_init__(self) -> None:
        for name in ("threads_per_block", "max_blocks", "unroll", "max_bodies"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise KernelError(f"GpuLaunch.{name}={value!r} must be a positive integer")
        if self.pack not in (1, 4):
            raise KernelError(f"GpuLaunch.pack={self.pack!r} is not supported; expected 1 or 4 "
                              "(uint16 pixels per 8-byte load)")

    def loop_shape(self, n_kernels: int, bands: list[Any], target: str,
                   outputs: Sequence[Any] = ()) -> dict[str, int]:
        """``unroll`` and ``pack`` of the generated loop (both 1 on the CPU)."""
        if target != "gpu":
            return {"unroll": 1, "pack": 1}
        pack = self.pack_for(bands, outputs, n_kernels)
        return {"unroll": self.unroll_for(n_kernels, pack), "pack": pack}

    def unroll_for(self, n_kernels: int, pack: int = 1) -> int:
        """:attr:`unroll`, lowered so a round holds at most :attr:`max_bodies` pixel bodies.

        >>> [GpuLaunch().unroll_for(n, pack=4) for n in (1, 5)], GpuLaunch().unroll_for(17)
        ([2, 1], 1)
        """
        return max(1, min(self.unroll, self.max_bodies // (n_kernels * pack)))

    def pack_for(self, arrays: Sequence[Any], outputs: Sequence[Any] = (), n_kernels: int = 1) -> int:
        """:attr:`pack` when ``n_kernels`` x pack stays within :attr:`max_bodies`, every band is
        uint16, its pixel count a multiple of it, and its device memory and that of every
        output the caller gave on the device 8-byte aligned (host arrays are copied to aligned
        buffers); else 1."""
        if self.pack == 1 or n_kernels * self.pack > self.max_bodies:
            return 1
        for arr in arrays:
            if arr.dtype != np.uint16 or arr.size % self.pack:
                return 1
        return self.pack if all(_aligned(a, 8) for a in (*arrays, *outputs)) else 1


DEFAULT_LAUNCH = GpuLaunch()


def _aligned(arr: Any, nbytes: int) -> bool:
    """False for a device array whose memory does not start on an ``nbytes`` boundary."""
    cai = getattr(arr, "__cuda_array_interface__", None)
    return cai is None or cai["data"][0] % nbytes == 0


def _to_device(value: Any) -> Any:
    """A numba device array viewing ``value`` (already on the GPU)."""
    from numba import cuda

    if hasattr(value, "copy_to_host"):
        return value  # numba's own (and the simulator's) device arrays
    return cuda.as_cuda_array(value)


def run_gpu(fused: Any, kernels: tuple[Kernel, ...], arrays: Mapping[str, Any],
            scalars: Mapping[str, list[Any]], out_args: list[Any],
            spec: OutputSpec, shape: tuple[int, ...],
            out: Mapping[str, Any] | None, unroll: int, pack: int,
            launch: GpuLaunch = DEFAULT_LAUNCH, stream: Any = None) -> dict[str, Any]:
    """Run ``fused`` on the GPU; host inputs give host outputs, device inputs device outputs.

    ``stream``: a numba CUDA stream to launch on (None: the default stream); the kernel is then
    queued behind the stream's earlier copies, and device outputs are ready once it has run.
    """
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
        args.append(d_out.view(np.uint64) if pack > 1 else d_out)  # whole words per store
    args += out_args
    if n:
        per_block = launch.threads_per_block * unroll * pack
        blocks = min(launch.max_blocks, (n + per_block - 1) // per_block)
        if stream is None:
            fused[blocks, launch.threads_per_block](*args)
        else:
            fused[blocks, launch.threads_per_block, stream](*args)
    for d_out, host in copies:
        d_out.copy_to_host(host.reshape(-1), stream=0 if stream is None else stream)
    if copies and stream is not None:
        stream.synchronize()  # host outputs are ready when the call returns, as on the CPU
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
