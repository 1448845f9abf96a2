"""The public entry point :func:`compute`: validate once at the edge, then run one fused pass."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from cluster.errors import KernelError, ResourceError
from cluster.kernels._codegen import FusedPlan, load_fused
from cluster.kernels._cpu import run_cpu
from cluster.kernels._device import is_device_array, resolve_device
from cluster.kernels._gpu import DEFAULT_LAUNCH, GpuLaunch, run_gpu
from cluster.kernels._registry import Kernel, canonical_order, check_bands, norm_kernels
from cluster.kernels._spec import BandInfo, OutputLike, OutputSpec, check_out_buffer, norm_output

__all__ = ["compute"]

_DEFAULT_INFO = BandInfo()


def compute(
    names: str | Kernel | Iterable[str | Kernel],
    bands: Mapping[str, Any],
    band_info: Mapping[str, BandInfo] | None = None,
    *,
    output: OutputLike = "float32",
    device: str | None = None,
    out: Mapping[str, Any] | None = None,
    gpu_launch: GpuLaunch | None = None,
    stream: Any = None,
) -> dict[str, Any]:
    """Compute one or more spectral indices in a single fused pass over the pixels.

    Args:
        names: kernel names (``"ndvi"``, ``["ndvi", "evi"]``; case-insensitive) or kernels.
        bands: canonical band name -> array of DN (any integer dtype, or float); all arrays the
            requested indices need must share one shape, e.g. ``(time, y, x)``. Extra bands are
            ignored. On the GPU, device arrays (numba, CuPy) are used in place.
        band_info: per band :class:`BandInfo` (scale, offset, nodata); missing bands default to
            ``BandInfo()`` (DN are reflectance, no nodata).
        output: ``"float32"`` (missing pixels NaN), ``"int16"`` (x1e-4, fill -32768) or an
            :class:`OutputSpec`; write ``spec.attrs()`` next to stored arrays.
        device: ``"cpu"``, ``"gpu"`` or ``"auto"``; None uses the default set by config
            (:func:`set_default_device`), which is ``"cpu"`` unless changed.
        out: index name -> preallocated C-contiguous array of the input shape and output dtype
            to write into; reusing buffers across tiles avoids page-faulting fresh memory.
        gpu_launch: how the GPU loop is shaped and launched (pixels per load, unroll, grid);
            None: the measured defaults (:class:`GpuLaunch`). Ignored on the CPU.
        stream: GPU only: the numba CUDA stream to launch on, so the kernel queues behind
            copies already on it (see :class:`cluster.kernels.TileStaging`); None: the
            default stream. Ignored on the CPU.

    Returns:
        Index name -> array of the input shape. A pixel is missing (NaN / fill) when any band its
        index needs is nodata or NaN, and where the formula has no float32 value: a zero
        denominator, a negative square root, or an overflow give NaN, never inf.

    Raises:
        UnknownKernelError: a name is not registered.
        MissingBandError: an index needs bands that ``bands`` lacks (all are named).
        ResourceError: ``device="gpu"`` and no GPU is present.
        KernelError: shapes differ, a dtype is unsupported, or an ``out`` buffer does not fit.

    Example:
        >>> import numpy as np
        >>> from cluster.kernels import BandInfo, compute
        >>> dn = {"nir": np.array([[4000, 0]], np.uint16), "red": np.array([[1000, 0]], np.uint16)}
        >>> info = {b: BandInfo(scale=1e-4, nodata=0) for b in dn}
        >>> compute("ndvi", dn, info)["ndvi"]
        array([[0.6, nan]], dtype=float32)
        >>> compute("ndvi", dn, info, output="int16")["ndvi"]
        array([[  6000, -32768]], dtype=int16)
    """
    kernels = norm_kernels(names)
    spec = norm_output(output)
    check_bands(kernels, bands)
    target = resolve_device(device)
    launch = DEFAULT_LAUNCH if gpu_launch is None else gpu_launch
    if target == "gpu":
        no_gpu = [k.name for k in kernels if not k.gpu]
        if no_gpu:
            raise ResourceError(f"kernels {no_gpu!r} have no GPU version; pass device='cpu'")
    needed = canonical_order({b for k in kernels for b in k.bands})
    infos = band_info or {}
    arrays, shape = _norm_arrays(needed, bands, target)
    has_nodata, nodata = _nodata(needed, arrays, infos)
    plan = FusedPlan(kernels=tuple(sorted(kernels, key=lambda k: k.name)), bands=needed,
                     dtypes=tuple(arrays[b].dtype.name for b in needed),
                     has_nodata=has_nodata, output=spec.dtype, target=target,
                     **launch.loop_shape(len(kernels), [arrays[b] for b in needed], target,
                                         [v for v in (out or {}).values() if is_device_array(v)]))
    fused = load_fused(plan)
    scalars: dict[str, list[Any]] = {}
    for band in needed:
        info = infos.get(band, _DEFAULT_INFO)
        scalars[band] = [np.float32(info.scale), np.float32(info.offset)]
        if band in nodata:
            scalars[band].append(nodata[band])
    out_args = _output_args(spec)
    if target == "gpu":
        return run_gpu(fused, kernels, arrays, scalars, out_args, spec, shape, out,
                       plan.unroll, plan.pack, launch, stream)
    buffers = _out_buffers(kernels, spec, shape, out)
    n = int(np.prod(shape, dtype=np.int64))
    run_cpu(fused, n, [(arrays[b].reshape(-1), scalars[b]) for b in needed],
            [buffers[k.name].reshape(-1) for k in plan.kernels], out_args)
    return buffers


def _norm_arrays(needed: tuple[str, ...], bands: Mapping[str, Any],
                 target: str) -> tuple[dict[str, Any], tuple[int, ...]]:
    arrays: dict[str, Any] = {}
    for band in needed:
        value = bands[band]
        on_device = is_device_array(value)
        if on_device and target == "cpu":
            raise KernelError(
                f"band {band!r} is a GPU array ({type(value).__name__}) but the kernels run on the "
                "CPU; pass device='gpu' or copy it to host memory first"
            )
        arr = value if on_device else np.asarray(value)
        dtype = np.dtype(arr.dtype)
        if dtype.kind == "f" and dtype.itemsize < 4 and not on_device:
            arr, dtype = arr.astype(np.float32), np.dtype(np.float32)
        if dtype.kind not in "uif" or (dtype.kind == "f" and dtype.itemsize < 4):
            raise KernelError(
                f"band {band!r} has dtype {dtype.name!r}; expected integer DN or float32/float64"
            )
        if not on_device and not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)  # the fused loop walks memory linearly
        arrays[band] = arr
    shapes = {b: tuple(a.shape) for b, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise KernelError(f"bands have different shapes {shapes!r}; expected one shape for all "
                          "(align and resample them onto the grid first)")
    return arrays, next(iter(shapes.values()))


def _nodata(needed: tuple[str, ...], arrays: Mapping[str, Any],
            infos: Mapping[str, BandInfo]) -> tuple[tuple[bool, ...], dict[str, Any]]:
    """Per band: whether a nodata compare is needed, and the nodata value in the band's dtype.

    A nodata that the dtype cannot hold (e.g. -9999 for uint16) never matches, so no compare;
    NaN nodata on float bands is already covered by the NaN test every float band gets.
    """
    flags, values = [], {}
    for band in needed:
        nd = infos.get(band, _DEFAULT_INFO).nodata
        dtype = np.dtype(arrays[band].dtype)
        value = None
        if nd is not None and not np.isnan(nd):
            if dtype.kind == "f":
                value = dtype.type(nd)
            elif float(nd).is_integer() and np.iinfo(dtype).min <= nd <= np.iinfo(dtype).max:
                value = dtype.type(int(nd))
        flags.append(value is not None)
        if value is not None:
            values[band] = value
    return tuple(flags), values


def _output_args(spec: OutputSpec) -> list[Any]:
    if spec.dtype != "int16":
        return []
    lo, hi = spec.valid_range  # type: ignore[misc]
    return [np.float32(1.0 / spec.scale_factor), np.float32(spec.add_offset), np.float32(lo),
            np.float32(hi), np.int16(spec.fill_value)]


def _out_buffers(kernels: tuple[Kernel, ...], spec: OutputSpec, shape: tuple[int, ...],
                 out: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    buffers: dict[str, np.ndarray] = {}
    for k in kernels:
        buf = None if out is None else out.get(k.name)
        if buf is None:
            buffers[k.name] = np.empty(shape, dtype=spec.np_dtype)
            continue
        check_out_buffer(k.name, buf, spec, shape)
        buffers[k.name] = buf
    return buffers
