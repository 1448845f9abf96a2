"""Does the kernel code generator earn its place? Generated fused loops against plain numba (issue #15).

``A`` is the real ``indices`` job path: ``cluster.kernels.compute`` on a tile's uint16 bands with
nodata, outputs written into reused buffers (``out=``), one generated, fused ``njit`` loop per
requested combination (``cluster/kernels/_codegen.py``), run in threads over slices
(``cluster.kernels._cpu.run_cpu``).

``B`` is the plain alternative the issue proposes, written here in full for the indices measured:
one hand-written ``@njit`` scalar function per index (``_ndvi``...), sharing ``_load`` (DN ->
reflectance + missing flag) and ``_store`` (NaN / int16 packing, one ``@overload`` per output
dtype), and one plain ``@njit(cache=True)`` loop per index (``ndvi_loop``...). A request for
several indices runs each index's loop in turn on the same slice of pixels (64 Ki px+, so the
bands stay in cache between the loops), through the same ``run_cpu`` slicing and threads.

Why a loop per index and not one templated fused loop: numba's on-disk cache (``cache=True``)
misses on every new process for a loop that takes its index functions as arguments (the
dispatcher's type is part of the cache key and is a new type in every process) or that closes
over them (closures count as dynamic globals). Checked with numba 0.68.1; the script prints the
cache stats of such a loop (``B-fused``: a fused loop over a tuple of index functions with
``literal_unroll``), measured once for its first-call time only.

Measured per case: throughput (Mpx/s) of A and B alternated ``--rounds`` times in one process
(medians and the spread min-max), first-call time in a fresh process with an empty numba cache
(cold) and again with that cache filled (warm), and bit identity: ``np.array_equal`` of every
output (float32 with NaN, int16 packed) on the benchmark tile plus edge pixels (nodata, zero
reflectance so zero denominators, saturated DN) and on float32 bands with NaN.

Run: ``.venv/bin/python -m benchmarks.codegen [--quick] [--json PATH] [--rounds N] [--size PX]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numba
import numpy as np
from numba import literal_unroll, types
from numba.extending import overload, register_jitable

from benchmarks._report import Record, emit, parse_args
from cluster.kernels import BandInfo, OutputSpec, compute, get_kernel
from cluster.kernels._cpu import run_cpu

CASES: dict[str, tuple[str, ...]] = {
    "ndvi": ("ndvi",),
    "ndvi+evi": ("ndvi", "evi"),
    "demo five (ndvi evi ndmi gndvi savi)": ("ndvi", "evi", "ndmi", "gndvi", "savi"),
}
"""The demo's five indices (``jobs/demo.py``), NDVI alone, and NDVI + EVI."""

NODATA = 0
INFO = {b: BandInfo(scale=1e-4, offset=-0.1, nodata=NODATA)
        for b in ("blue", "green", "red", "nir", "swir16")}

# -- B: the plain alternative ------------------------------------------------------------------
# float32 constants as globals: numba freezes them, and a float literal would promote to float64.

_NAN = np.float32(np.nan)
_INF = np.float32(np.inf)
_ZERO = np.float32(0.0)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)
_EVI_G, _EVI_C1, _EVI_C2, _EVI_L = np.float32(2.5), np.float32(6.0), np.float32(7.5), np.float32(1.0)
_SAVI_L = np.float32(0.5)


@register_jitable(inline="always")
def _div(a: Any, b: Any) -> Any:
    return a / b if b != _ZERO else _NAN


@register_jitable(inline="always")
def _load(band: Any, i: int, p: Any) -> Any:
    """Reflectance and the missing flag of pixel ``i``; ``p`` = (scale, offset, nodata, has_nodata)."""
    scale, offset, nodata, has_nodata = p
    v = band[i]
    return np.float32(v) * scale + offset, (v != v) | (has_nodata & (v == nodata))


def _store(out: Any, i: int, r: Any, miss: Any, pack: Any) -> None:
    """Write one result: NaN where missing (float32), or packed to int16 with a fill."""
    raise NotImplementedError("compiled only")


@overload(_store, inline="always", jit_options={"error_model": "numpy"})
def _store_impl(out, i, r, miss, pack):  # type: ignore[no-untyped-def]
    # numba checks that the implementation's signature equals this one, annotations included
    if out.dtype == types.float32:
        def store_f32(out, i, r, miss, pack):  # type: ignore[no-untyped-def]
            out[i] = _NAN if (miss | (abs(r) == _INF)) else r
        return store_f32

    def store_i16(out, i, r, miss, pack):  # type: ignore[no-untyped-def]
        inv_scale, add_offset, lo, hi, fill = pack
        q = (r - add_offset) * inv_scale
        q = lo if q < lo else q
        q = hi if q > hi else q
        out[i] = fill if (q != q) | miss | (abs(r) == _INF) else np.int16(
            q + _HALF if q >= _ZERO else q - _HALF)
    return store_i16


@register_jitable(inline="always")
def _ndvi(nir: Any, red: Any) -> Any:
    return _div(nir - red, nir + red)


@register_jitable(inline="always")
def _evi(nir: Any, red: Any, blue: Any) -> Any:
    return _div(_EVI_G * (nir - red), nir + _EVI_C1 * red - _EVI_C2 * blue + _EVI_L)


@register_jitable(inline="always")
def _savi(nir: Any, red: Any) -> Any:
    return _div((_ONE + _SAVI_L) * (nir - red), nir + red + _SAVI_L)


@register_jitable(inline="always")
def _ndmi(nir: Any, swir16: Any) -> Any:
    return _div(nir - swir16, nir + swir16)


@register_jitable(inline="always")
def _gndvi(nir: Any, green: Any) -> Any:
    return _div(nir - green, nir + green)


_OPTS = {"cache": True, "nogil": True, "error_model": "numpy"}


@numba.njit(**_OPTS)
def ndvi_loop(n, nir, p_nir, red, p_red, out, pack):  # type: ignore[no-untyped-def]
    for i in range(n):
        a, ma = _load(nir, i, p_nir)
        b, mb = _load(red, i, p_red)
        _store(out, i, _ndvi(a, b), ma | mb, pack)


@numba.njit(**_OPTS)
def evi_loop(n, nir, p_nir, red, p_red, blue, p_blue, out, pack):  # type: ignore[no-untyped-def]
    for i in range(n):
        a, ma = _load(nir, i, p_nir)
        b, mb = _load(red, i, p_red)
        c, mc = _load(blue, i, p_blue)
        _store(out, i, _evi(a, b, c), ma | mb | mc, pack)


@numba.njit(**_OPTS)
def savi_loop(n, nir, p_nir, red, p_red, out, pack):  # type: ignore[no-untyped-def]
    for i in range(n):
        a, ma = _load(nir, i, p_nir)
        b, mb = _load(red, i, p_red)
        _store(out, i, _savi(a, b), ma | mb, pack)


@numba.njit(**_OPTS)
def ndmi_loop(n, nir, p_nir, swir16, p_swir16, out, pack):  # type: ignore[no-untyped-def]
    for i in range(n):
        a, ma = _load(nir, i, p_nir)
        b, mb = _load(swir16, i, p_swir16)
        _store(out, i, _ndmi(a, b), ma | mb, pack)


@numba.njit(**_OPTS)
def gndvi_loop(n, nir, p_nir, green, p_green, out, pack):  # type: ignore[no-untyped-def]
    for i in range(n):
        a, ma = _load(nir, i, p_nir)
        b, mb = _load(green, i, p_green)
        _store(out, i, _gndvi(a, b), ma | mb, pack)


PLAIN: dict[str, tuple[Callable[..., None], tuple[str, ...]]] = {
    "ndvi": (ndvi_loop, ("nir", "red")),
    "evi": (evi_loop, ("nir", "red", "blue")),
    "savi": (savi_loop, ("nir", "red")),
    "ndmi": (ndmi_loop, ("nir", "swir16")),
    "gndvi": (gndvi_loop, ("nir", "green")),
}


def _band_params(arr: np.ndarray, info: BandInfo) -> tuple[Any, ...]:
    nd = info.nodata
    has = nd is not None and (arr.dtype.kind == "f" or np.iinfo(arr.dtype).min <= nd <= np.iinfo(arr.dtype).max)
    return (np.float32(info.scale), np.float32(info.offset), arr.dtype.type(nd if has else 0), has)


def _pack_params(spec: OutputSpec) -> tuple[Any, ...]:
    if spec.dtype != "int16":
        return (np.float32(1), np.float32(0), np.float32(0), np.float32(0), np.int16(0))
    lo, hi = spec.valid_range  # type: ignore[misc]
    return (np.float32(1.0 / spec.scale_factor), np.float32(spec.add_offset), np.float32(lo),
            np.float32(hi), np.int16(spec.fill_value))


def compute_plain(names: Sequence[str], bands: Mapping[str, np.ndarray],
                  band_info: Mapping[str, BandInfo], output: str = "float32",
                  out: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """B: the plain loops, one per index, in turn on each slice (``run_cpu``'s threads)."""
    spec = OutputSpec.int16() if output == "int16" else OutputSpec()
    needed = tuple(sorted({b for n in names for b in PLAIN[n][1]}))
    shape = bands[needed[0]].shape
    buffers = {n: (out[n] if out is not None else np.empty(shape, spec.np_dtype)) for n in names}
    params = {b: _band_params(bands[b], band_info[b]) for b in needed}
    nb = len(needed)

    def each_slice(m: int, *args: Any) -> None:
        per_band = {b: (args[2 * j], args[2 * j + 1]) for j, b in enumerate(needed)}
        for k, name in enumerate(names):
            loop, reads = PLAIN[name]
            loop(m, *[x for b in reads for x in per_band[b]], args[2 * nb + k], args[-1])

    n = int(np.prod(shape))
    run_cpu(each_slice, n, [(bands[b].reshape(-1), [params[b]]) for b in needed],
            [buffers[k].reshape(-1) for k in names], [_pack_params(spec)])
    return buffers


# -- B-fused: one templated fused loop over a tuple of index functions (not cacheable) ----------

@numba.njit(inline="always", error_model="numpy")  # a dispatcher: it is passed as an argument
def _ndvi_px(i: int, b: Any, p: Any) -> Any:  # b, p: (nir, red, blue, green, swir16)
    x, mx = _load(b[0], i, p[0])
    y, my = _load(b[1], i, p[1])
    return _ndvi(x, y), mx | my


@numba.njit(**_OPTS)
def fused_template(fns, n, b, p, outs, pack):  # type: ignore[no-untyped-def]
    for i in range(n):
        k = 0
        for fn in literal_unroll(fns):
            r, miss = fn(i, b, p)
            _store(outs[k], i, r, miss, pack)
            k += 1


# -- measuring ---------------------------------------------------------------------------------

def make_tile(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """uint16 DN like Sentinel-2 L2A farmland (``benchmarks._bands``), plus edge pixels."""
    from benchmarks._bands import make_bands

    bands = make_bands(size, seed)
    rng = np.random.default_rng(seed + 1)
    nir = bands["nir"]
    bands["green"] = np.clip(nir.astype(np.int32) // 2 + rng.integers(-300, 300, nir.shape), 1, 65535).astype(np.uint16)
    bands["green"].reshape(-1)[rng.integers(0, nir.size, nir.size // 200)] = NODATA
    for b in bands.values():  # zero reflectance (zero denominators) and saturation
        b[0, :64] = 1000
        b[1, :64] = 65535
    return bands


def _first_call_s(which: str, names: tuple[str, ...], output: str, cache_dir: str) -> float:
    """Seconds of the first call in a fresh process with NUMBA_CACHE_DIR=cache_dir."""
    code = (
        "import time, numpy as np\n"
        "from benchmarks.codegen import INFO, compute, compute_plain, make_tile\n"
        f"names, output = {names!r}, {output!r}\n"
        "tile = make_tile(256)\n"
        "t0 = time.perf_counter()\n"
        f"(compute if {which!r} == 'A' else compute_plain)(names, tile, INFO, output=output)\n"
        "print(time.perf_counter() - t0)\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if proc.returncode:
        raise RuntimeError(f"first-call probe failed:\n{proc.stdout}\n{proc.stderr}")
    return float(proc.stdout.strip().splitlines()[-1])


def _fused_template_check(tile: Mapping[str, np.ndarray]) -> tuple[float, int, int]:
    """B-fused's first-call time in this process and its cache hits / misses (NDVI only)."""
    order = ("nir", "red")
    flat = tuple(tile[b].reshape(-1) for b in order)
    prm = tuple(_band_params(tile[b], INFO[b]) for b in order)
    out = (np.empty(flat[0].size, np.float32),)
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # numba: "First-class function type feature is experimental"
        warnings.simplefilter("ignore", numba.NumbaExperimentalFeatureWarning)
        fused_template((_ndvi_px,), flat[0].size, flat, prm, out, _pack_params(OutputSpec()))
    seconds = time.perf_counter() - t0
    stats = fused_template.stats
    return seconds, sum(stats.cache_hits.values()), sum(stats.cache_misses.values())


def check_identical(tile: Mapping[str, np.ndarray]) -> list[str]:
    """Cases (name/output/input) where A and B differ in any bit; empty when identical."""
    bad = []
    floats = {b: (a.astype(np.float64) * 1e-4 - 0.1).astype(np.float32) for b, a in tile.items()}
    for b, a in floats.items():
        a[tile[b] == NODATA] = np.nan
    float_info = {b: BandInfo(nodata=-9999.0) for b in tile}
    for case, names in CASES.items():
        for output in ("float32", "int16"):
            for label, bands, info in (("uint16", tile, INFO), ("float32 NaN", floats, float_info)):
                if label != "uint16" and output == "int16":
                    continue
                a = compute(names, bands, info, output=output)
                b = compute_plain(names, bands, info, output=output)
                for name in names:
                    if not np.array_equal(a[name].view(np.uint8), b[name].view(np.uint8)):
                        bad.append(f"{case}/{output}/{label}/{name}")
    return bad


def main(argv: list[str] | None = None) -> int:
    def extra(p: argparse.ArgumentParser) -> None:
        p.add_argument("--rounds", type=int, default=None, help="A/B alternations per case")
        p.add_argument("--size", type=int, default=None, help="tile edge in pixels")

    args = parse_args((__doc__ or "").splitlines()[0], argv, extra=extra)
    size = args.size or (1024 if args.quick else 4096)
    rounds = args.rounds or (7 if args.quick else 21)
    tile = make_tile(size)
    npx = size * size
    print(f"tile {size} x {size} uint16 ({npx / 1e6:.1f} Mpx), numba threads {numba.get_num_threads()}, "
          f"{rounds} rounds A/B alternated (order swapped every round), load average "
          f"{os.getloadavg()[0]:.2f}")

    bad = check_identical(make_tile(512, seed=3))
    print("bit-identical (np.array_equal of every byte; float32 + NaN, int16, float32 bands with NaN): "
          + ("yes, every case" if not bad else f"NO: {bad}"))

    records: list[Record] = []
    rows = []
    for case, names in CASES.items():
        for output in ("float32", "int16"):
            sub = {b: tile[b] for b in {b for n in names for b in get_kernel(n).bands}}
            dtype = np.float32 if output == "float32" else np.int16
            out_a = {n: np.empty((size, size), dtype) for n in names}
            out_b = {n: np.empty((size, size), dtype) for n in names}

            def run_a() -> None:
                compute(names, sub, INFO, output=output, out=out_a)

            def run_b() -> None:
                compute_plain(names, sub, INFO, output=output, out=out_b)

            run_a()
            run_b()  # compiled (or loaded) and buffers faulted in
            times: dict[str, list[float]] = {"A": [], "B": []}
            for r in range(rounds):
                for which in ("AB" if r % 2 == 0 else "BA"):
                    t0 = time.perf_counter()
                    (run_a if which == "A" else run_b)()
                    times[which].append(time.perf_counter() - t0)
            mpx = {w: sorted(npx / t / 1e6 for t in ts) for w, ts in times.items()}
            ratio = sorted(ta / tb for ta, tb in zip(times["A"], times["B"], strict=True))
            med = {w: statistics.median(v) for w, v in mpx.items()}
            label = f"{case}, {output}"
            rows.append((label, med["A"], mpx["A"][0], mpx["A"][-1], med["B"], mpx["B"][0],
                         mpx["B"][-1], statistics.median(ratio), ratio[0], ratio[-1]))
            for w, tool in (("A", "generated fused"), ("B", "plain loop per index")):
                records.append(Record(tool=tool, case=label, seconds=statistics.median(times[w]),
                                      mpix_per_s=med[w], extra={"mpix_per_s_all": mpx[w]}))
    print()
    print("| case | A generated Mpx/s (min-max) | B plain Mpx/s (min-max) | B/A speed, median (min-max of pairs) |")
    print("| --- | --- | --- | --- |")
    for label, ma, lo_a, hi_a, mb, lo_b, hi_b, rmed, rlo, rhi in rows:
        print(f"| {label} | {ma:.0f} ({lo_a:.0f}-{hi_a:.0f}) | {mb:.0f} ({lo_b:.0f}-{hi_b:.0f}) | "
              f"{rmed:.3f} ({rlo:.2f}-{rhi:.2f}) |")

    print()
    print("first call (compile or cache load), 256 x 256 tile, a fresh process each:")
    print("| case | A cold s | A warm s | B cold s | B warm s |")
    print("| --- | --- | --- | --- | --- |")
    for case, names in CASES.items():
        for output in ("float32", "int16"):
            cells = []
            for which in ("A", "B"):
                with tempfile.TemporaryDirectory(prefix="harvest-codegen-bench-") as cache:
                    cells += [_first_call_s(which, names, output, cache),
                              _first_call_s(which, names, output, cache)]
            print(f"| {case}, {output} | {cells[0]:.2f} | {cells[1]:.2f} | {cells[2]:.2f} | {cells[3]:.2f} |")
            records.append(Record(tool="first call", case=f"{case}, {output}", seconds=cells[0],
                                  mpix_per_s=0.0, extra={"A_cold_s": cells[0], "A_warm_s": cells[1],
                                                         "B_cold_s": cells[2], "B_warm_s": cells[3]}))
    seconds, hits, misses = _fused_template_check(make_tile(256))
    print(f"B-fused (one loop over a tuple of index functions, literal_unroll), NDVI: first call "
          f"{seconds:.2f} s in this process, numba cache hits {hits}, misses {misses} "
          "(a miss in every new process: the function arguments' types are new each time)")
    emit(records, args.json, meta={"size_px": size, "rounds": rounds, "identical": not bad,
                                   "threads": numba.get_num_threads(),
                                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
