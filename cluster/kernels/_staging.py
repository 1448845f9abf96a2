"""One actor's GPU buffers for a stream of tiles: pinned host memory, device memory, one CUDA stream.

A tile's bands are read on the CPU (decompressed from the store) into pinned host buffers; each
band's copy to the device is queued as soon as it is read, so it runs while the next band is
decoded. The kernel is queued behind the copies on the same stream, then one copy back per
index, each followed by an event: the caller encodes the first index while the others are still
on their way. Every buffer is allocated once per actor and reused, since pinning or allocating
device memory for each tile costs more than the copies themselves.

numba.cuda is imported only when a staging is made, so a CPU machine never loads it.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from cluster.kernels._compute import compute
from cluster.kernels._gpu import GpuLaunch
from cluster.kernels._spec import BandInfo, OutputLike, norm_output

__all__ = ["TileStaging"]


class TileStaging:
    """Pinned host and device buffers and one CUDA stream, reused tile after tile.

    Example:
        The order of calls for one tile (needs a GPU, or numba's CUDA simulator; the indices
        job's test runs this path under the simulator):

        >>> staging = TileStaging()  # doctest: +SKIP
        >>> for band, dn in {"nir": [[4000, 0]], "red": [[1000, 0]]}.items():  # doctest: +SKIP
        ...     staging.host_band(band, (1, 2), np.uint16)[...] = dn  # decode into pinned memory
        ...     staging.upload(band)                                # queued; returns at once
        >>> staging.run(["ndvi"], {b: BandInfo(scale=1e-4, nodata=0) for b in ("nir", "red")})  # doctest: +SKIP
        >>> {name: host.tolist() for name, host in staging.results()}  # doctest: +SKIP
        {'ndvi': [[0.6000000238418579, nan]]}
    """

    def __init__(self) -> None:
        from numba import cuda

        self._cuda = cuda
        self.stream = cuda.stream()
        self._host_in: dict[str, np.ndarray] = {}
        self._dev_in: dict[str, Any] = {}
        self._host_out: dict[str, np.ndarray] = {}
        self._dev_out: dict[str, Any] = {}
        self._pending: list[tuple[str, Any]] = []
        self._uploaded: set[str] = set()  # copies queued since the last run(): may still be reading

    def host_band(self, band: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """The pinned host buffer to read ``band`` of the next tile into (allocated on first use
        or when the tile's shape or dtype changes)."""
        if self._pending or band in self._uploaded:  # a copy may still be reading these buffers
            self.wait()
        host: np.ndarray = _buffer(self._host_in, band, shape, dtype, self._cuda.pinned_array)
        return host

    def upload(self, band: str) -> None:
        """Queue the copy of ``band``'s host buffer to the device; returns at once."""
        host = self._host_in[band]
        dev = _buffer(self._dev_in, band, host.shape, host.dtype, self._cuda.device_array)
        dev.copy_to_device(host, stream=self.stream)
        self._uploaded.add(band)

    def run(self, names: Sequence[str], band_info: Mapping[str, BandInfo], *,
            output: OutputLike = "float32", launch: GpuLaunch | None = None) -> None:
        """Queue the fused kernels on the uploaded bands, and each index's copy back to host."""
        spec = norm_output(output)
        shape = next(iter(self._dev_in.values())).shape
        for name in names:
            _buffer(self._dev_out, name, shape, spec.np_dtype, self._cuda.device_array)
        compute(list(names), self._dev_in, band_info, output=spec, device="gpu",
                out=self._dev_out, gpu_launch=launch, stream=self.stream)
        self._uploaded.clear()  # the events below come after the uploads on the same stream
        for name in names:
            host = _buffer(self._host_out, name, shape, spec.np_dtype, self._cuda.pinned_array)
            self._dev_out[name].copy_to_host(host, stream=self.stream)
            event = self._cuda.event()
            event.record(self.stream)
            self._pending.append((name, event))

    def results(self) -> Iterator[tuple[str, np.ndarray]]:
        """Each index's host buffer, in the order :meth:`run` got them, as soon as its copy
        has landed. The buffers are overwritten by the next tile: encode or copy them first."""
        while self._pending:
            name, event = self._pending.pop(0)
            event.synchronize()
            yield name, self._host_out[name]

    def wait(self) -> None:
        """Block until everything queued has run. :meth:`host_band` calls it when a buffer may
        still be in use (results not taken, or a tile whose bands were all fill was not run)."""
        self.stream.synchronize()
        self._pending.clear()
        self._uploaded.clear()


def _buffer(pool: dict[str, Any], key: str, shape: tuple[int, ...], dtype: Any,
            allocate: Any) -> Any:
    buf = pool.get(key)
    if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != np.dtype(dtype):
        buf = pool[key] = allocate(tuple(shape), dtype=np.dtype(dtype))
    return buf
