"""Spectral-index kernels against the tools a user would reach for, and against memory bandwidth.

Every tool does the same job on the same data: uint16 DN bands (Sentinel-2 L2A style: reflectance
= DN * 1e-4 - 0.1, DN 0 = nodata, sprinkled in), to float32 indices with NaN where a band is
nodata. Cases: NDVI (2 bands in), EVI (3 bands), and a five-index pass (NDVI, EVI, SAVI, NDMI,
NBR over 5 bands: the set xarray-spatial also has).

Tools:
  * ``numpy``: plain NumPy expressions (reflectance arrays, mask, formula; NumPy's own x/0).
  * ``numexpr``: one ``numexpr.evaluate`` per index doing scale, mask and formula.
  * ``xarray-spatial``: xarray for scale and mask, then ``xrspatial.multispectral.<index>``.
  * ``harvest-cluster``: ``cluster.kernels.compute`` reusing its output buffers (``out=``), as the
    ``indices`` job does per tile; ``harvest-cluster (fresh out)`` allocates new outputs each call.
  * ``harvest-cluster (5 calls)``: the five indices as five single-index calls (buffers reused).

The physical limit is the fastest of several copies, measured in the same run, each moving the
same bytes as NDVI (4 B read + 4 B written per pixel): a numba ``prange`` copy over 8-byte words
(the buffers viewed as uint64) and over float32, ``np.copyto`` on one thread, ``np.copyto`` on
one slice per thread in a thread pool, and a copy run through our own slicing
(``cluster.kernels._cpu.run_cpu``, 4-byte words). ``GB/s`` counts bytes read from the inputs +
bytes written to the outputs (uint16 DN in, float32 or int16 out; a write's read-for-ownership
is not counted, for the copies either), ``%bw`` divides it by that limit. With ``--quick`` the
arrays (16 MB per band) partly fit in cache, so ``%bw`` can pass 100%; the full
10980 x 10980 run is the real test.

The goal (NDVI and EVI >= 75 % of the limit) is judged **paired**: over several rounds, each
running every copy and the kernel once, a kernel's GB/s over that round's fastest copy
(:func:`paired_fractions`); the median over rounds decides. The table's ``%bw`` divides by a
limit timed once before every kernel, which this VM's drifting bandwidth can move either way.

Run: ``.venv/bin/python -m benchmarks.kernels [--quick] [--json PATH] [--threads N]``.
"""

from __future__ import annotations

import os
import sys

# Thread counts must be fixed before numba / numexpr start their pools.
_THREADS = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--threads=")), None)
if _THREADS is None and "--threads" in sys.argv:
    _THREADS = int(sys.argv[sys.argv.index("--threads") + 1])
if _THREADS is None:
    _THREADS = len(os.sched_getaffinity(0))
os.environ["NUMBA_NUM_THREADS"] = str(_THREADS)
os.environ["NUMEXPR_MAX_THREADS"] = str(_THREADS)
os.environ["NUMEXPR_NUM_THREADS"] = str(_THREADS)

import time  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Callable, Iterator  # noqa: E402

import numba  # noqa: E402
import numexpr  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
import xrspatial.multispectral as xrs  # noqa: E402

from benchmarks._report import OURS, Record, best_of, emit, parse_args  # noqa: E402
from benchmarks._bands import CASES, INFO, NODATA, OFFSET, SCALE, bands_for, expression_indices, make_bands  # noqa: E402
from cluster.kernels import compute  # noqa: E402

# -- the physical limit ------------------------------------------------------------------------

@numba.njit(nogil=True, cache=True)
def _copy(n: int, src: np.ndarray, dst: np.ndarray) -> None:
    for i in range(n):
        dst[i] = src[i]


@numba.njit(parallel=True, nogil=True, cache=True)
def _copy_prange(src: np.ndarray, dst: np.ndarray) -> None:
    for i in numba.prange(src.size):
        dst[i] = src[i]


@contextmanager
def copy_ways(npx: int) -> Iterator[list[tuple[str, Callable[[], object]]]]:
    """The copies of 4 B/px (the same bytes NDVI reads and writes), as (how, call).

    Every copy moves the same two buffers (read ``npx * 4`` bytes, write as many); the
    fastest one is the limit, whichever it is on the machine at hand:

    * numba ``prange`` over the buffers viewed as uint64 (8-byte words), and as float32;
    * ``np.copyto``, one thread (one core can already saturate memory on small VMs);
    * ``np.copyto`` on one contiguous slice per thread, in a thread pool (NumPy releases
      the GIL while it copies);
    * our own slicing (``cluster.kernels._cpu.run_cpu``, a few slices per thread) around a
      4-byte-word numba loop: the copy that runs exactly like the kernels do.
    """
    from concurrent.futures import ThreadPoolExecutor

    from cluster.kernels._cpu import run_cpu

    nbytes = 4 * npx
    src = np.ones(-(-nbytes // 8), dtype=np.uint64).view(np.uint8)[:nbytes]
    dst = np.zeros_like(src)  # faulted in by the warm-up calls
    u32 = (src.view(np.uint32), dst.view(np.uint32))
    step = -(-npx // _THREADS)
    slices = [(u32[1][s:s + step], u32[0][s:s + step]) for s in range(0, npx, step)]
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        def split_copy() -> None:
            for f in [pool.submit(np.copyto, d, s) for d, s in slices]:
                f.result()

        yield [
            (f"prange u64, {_THREADS} thr", lambda: _copy_prange(src[: nbytes // 8 * 8].view(np.uint64),
                                                                 dst[: nbytes // 8 * 8].view(np.uint64))),
            (f"prange f32, {_THREADS} thr", lambda: _copy_prange(src.view(np.float32), dst.view(np.float32))),
            ("np.copyto, 1 thread", lambda: np.copyto(dst, src)),
            (f"np.copyto x {len(slices)} thr", split_copy),
            (f"like ours, {_THREADS} thr", lambda: run_cpu(_copy, npx, [(u32[0], [])], [u32[1]], [])),
        ]


def copy_bandwidth(npx: int, repeat: int) -> list[tuple[str, float, float]]:
    """(how, seconds, GB/s) of each of :func:`copy_ways`."""
    with copy_ways(npx) as ways:
        results = []
        for how, fn in ways:
            seconds = _time(fn, repeat)
            results.append((how, seconds, 8 * npx / seconds / 1e9))
        return results


def paired_fractions(npx: int, kernels: dict[str, tuple[Callable[[], object], float]],
                     rounds: int) -> dict[str, list[float]]:
    """Per kernel, its GB/s over the fastest copy **of the same round**, for each round.

    This VM's memory bandwidth drifts by up to 1.5x within minutes, so a limit timed once
    at the start can sit on either side of kernels timed later (a kernel at 129 % of it was
    seen). Each round runs every copy once and every kernel once, in alternating order, so
    a kernel and its limit share the moment. ``kernels``: name -> (call, bytes it moves).
    """
    out: dict[str, list[float]] = {name: [] for name in kernels}
    with copy_ways(npx) as ways:
        steps: list[tuple[str, Callable[[], object]]] = [*ways, *((k, fn) for k, (fn, _) in kernels.items())]
        for _, fn in steps:  # warm-up
            fn()
        for r in range(rounds):
            copies, results = 0.0, {}
            for name, fn in (steps if r % 2 == 0 else steps[::-1]):
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                if name in kernels:
                    results[name] = kernels[name][1] / dt / 1e9
                else:
                    copies = max(copies, 8 * npx / dt / 1e9)
            for name, gbps in results.items():
                out[name].append(gbps / copies)
    return out


# -- the competitors ---------------------------------------------------------------------------

_NE = {
    "ndvi": "where((nir == 0) | (red == 0), nan, (N - R) / (N + R))",
    "evi": "where((nir == 0) | (red == 0) | (blue == 0), nan, 2.5 * (N - R) / (N + 6 * R - 7.5 * B + 1))",
    "savi": "where((nir == 0) | (red == 0), nan, 1.5 * (N - R) / (N + R + 0.5))",
    "ndmi": "where((nir == 0) | (swir16 == 0), nan, (N - S1) / (N + S1))",
    "nbr": "where((nir == 0) | (swir22 == 0), nan, (N - S2) / (N + S2))",
}
_NE_REFL = {"N": "nir", "R": "red", "B": "blue", "S1": "swir16", "S2": "swir22"}


def numexpr_indices(bands: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        expr = _NE[name]
        for short, band in _NE_REFL.items():  # inline DN -> reflectance (no temporaries)
            expr = expr.replace(f"{short})", f"({band} * s + o))").replace(f"{short} ", f"({band} * s + o) ")
        out[name] = numexpr.evaluate(expr, local_dict={**bands, "s": SCALE, "o": OFFSET,
                                                       "nan": np.float32(np.nan)})
    return out


def xrspatial_indices(arrays: dict[str, xr.DataArray], names: tuple[str, ...]) -> dict[str, xr.DataArray]:
    needed = bands_for(names)
    r = {b: xr.where(arrays[b] == NODATA, np.float32(np.nan), arrays[b].astype(np.float32) * SCALE + OFFSET)
         for b in needed}
    out = {}
    for name in names:
        if name == "ndvi":
            out[name] = xrs.ndvi(r["nir"], r["red"])
        elif name == "evi":
            out[name] = xrs.evi(r["nir"], r["red"], r["blue"])
        elif name == "savi":
            out[name] = xrs.savi(r["nir"], r["red"], soil_factor=0.5)
        elif name == "ndmi":
            out[name] = xrs.ndmi(r["nir"], r["swir16"])
        elif name == "nbr":
            out[name] = xrs.nbr(r["nir"], r["swir22"])
    return out


# -- the run -----------------------------------------------------------------------------------

def _time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: JIT compilation, first-touch of reused buffers
    return best_of(fn, repeat)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv,
                      extra=lambda p: p.add_argument("--threads", type=int, default=_THREADS,
                                                     help="threads for numba and numexpr"))
    size = 2000 if args.quick else 10980
    repeat = 5 if args.quick else 3
    numexpr.set_num_threads(_THREADS)
    print(f"threads: numba={numba.get_num_threads()} numexpr={numexpr.get_num_threads()} "
          f"(NumPy and xarray-spatial run single-threaded); image {size} x {size} uint16; "
          f"median of {repeat} after one warm-up; load average {os.getloadavg()[0]:.2f} "
          f"(anything else running shares these cores and this memory bus)")
    bands = make_bands(size)
    arrays = {b: xr.DataArray(a, dims=("y", "x")) for b, a in bands.items()}
    npx = size * size
    mpix = npx / 1e6

    copies = copy_bandwidth(npx, repeat)
    limit_how, _, copy_gbps = max(copies, key=lambda c: c[2])
    records = [Record(tool=how, case="memory copy (limit)" if how == limit_how else "memory copy",
                      seconds=seconds, mpix_per_s=mpix / seconds, gbps=gbps,
                      fraction_of_bandwidth=gbps / copy_gbps)
               for how, seconds, gbps in copies]

    def record(tool: str, case: str, names: tuple[str, ...], seconds: float) -> Record:
        in_bytes = 2 * npx * len(bands_for(names))
        gbps = (in_bytes + 4 * npx * len(names)) / seconds / 1e9
        rec = Record(tool=tool, case=case, seconds=seconds, mpix_per_s=mpix / seconds, gbps=gbps,
                     fraction_of_bandwidth=gbps / copy_gbps)
        records.append(rec)
        return rec

    for case, names in CASES.items():
        sub = {b: bands[b] for b in bands_for(names)}
        out = {n: np.empty((size, size), np.float32) for n in names}
        record(OURS, case, names, _time(lambda: compute(names, sub, INFO, out=out), repeat))
        record(f"{OURS} (fresh out)", case, names,
               _time(lambda: compute(names, sub, INFO), repeat))
        if len(names) > 1:
            def separate() -> None:
                for n in names:
                    compute(n, sub, INFO, out=out)
            rec = record(f"{OURS} (5 calls)", case, names, _time(separate, repeat))
            rec.extra["note"] = "the same indices as separate single-index calls"
        record("numpy", case, names, _time(lambda: expression_indices(sub, names), repeat))
        record("numexpr", case, names, _time(lambda: numexpr_indices(sub, names), repeat))
        record("xarray-spatial", case, names, _time(lambda: xrspatial_indices(arrays, names), repeat))
        del out

    # Packed int16 output (what the cube stores): outputs halve, so fusing saves more.
    five = CASES["five (ndvi evi savi ndmi nbr)"]
    sub = {b: bands[b] for b in bands_for(five)}
    out16 = {n: np.empty((size, size), np.int16) for n in five}
    case16 = "five, int16 out"

    def separate16() -> None:
        for n in five:
            compute(n, sub, INFO, output="int16", out=out16)

    for tool, fn in ((OURS, lambda: compute(five, sub, INFO, output="int16", out=out16)),
                     (f"{OURS} (5 calls)", separate16)):
        seconds = _time(fn, repeat)
        gbps = (2 * npx * len(sub) + 2 * npx * len(five)) / seconds / 1e9
        records.append(Record(tool=tool, case=case16, seconds=seconds, mpix_per_s=mpix / seconds,
                              gbps=gbps, fraction_of_bandwidth=gbps / copy_gbps))
    del out16

    rounds = 5 if args.quick else 11
    goal_cases = ("ndvi", "evi")
    goal_out = {n: np.empty((size, size), np.float32) for c in goal_cases for n in CASES[c]}
    paired = paired_fractions(npx, {
        case: ((lambda names=CASES[case]: compute(names, {b: bands[b] for b in bands_for(names)}, INFO,
                                                  out=goal_out)),
               float((2 * len(bands_for(CASES[case])) + 4 * len(CASES[case])) * npx))
        for case in goal_cases}, rounds)
    del goal_out
    emit(records, args.json, meta={"threads": _THREADS, "size_px": size, "repeat": repeat,
                                   "copy_gbps": copy_gbps, "copy_limit": limit_how,
                                   "paired_fraction_of_copy": paired, "paired_rounds": rounds,
                                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for case, out_bytes in (("five (ndvi evi savi ndmi nbr)", 4), (case16, 2)):
        fused = next(r for r in records if r.case == case and r.tool == OURS)
        calls = next(r for r in records if r.case == case and r.tool == f"{OURS} (5 calls)")
        in_sep = 2 * sum(len(bands_for((n,))) for n in five)
        bound = (in_sep + out_bytes * 5) / (2 * len(sub) + out_bytes * 5)
        print(f"{case}: fused pass {calls.seconds / fused.seconds:.2f}x faster than 5 calls; "
              f"memory-traffic bound {bound:.2f}x ({in_sep} vs {2 * len(sub)} B/px read, "
              f"{out_bytes * 5} B/px written by both)")
    print(f"limit: {limit_how} = {copy_gbps:.1f} GB/s, the fastest copy of this run ("
          + "; ".join(f"{how}: {gbps:.1f}" for how, _, gbps in copies)
          + " GB/s; bytes read + bytes written, 4 + 4 B/px)")
    for case, names in CASES.items():
        ours = next(r for r in records if r.case == case and r.tool == OURS)
        per_px = 2 * len(bands_for(names)) + 4 * len(names)
        print(f"{case}: {ours.gbps:.1f} GB/s = {100 * ours.fraction_of_bandwidth:.0f} % of the limit "
              f"({per_px} B/px: uint16 bands read + float32 written)")
    for case, fractions in paired.items():
        median = float(np.median(fractions))
        print(f"{case}, paired with the copies ({rounds} rounds of every copy and the kernel once, order "
              f"alternating): median {100 * median:.0f} % of the round's fastest copy (rounds "
              f"{100 * min(fractions):.0f}-{100 * max(fractions):.0f} %); goal >= 75 %: "
              f"{'met' if median >= 0.75 else 'NOT met'}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    _check_correct(bands)
    return 0


def _check_correct(bands: dict[str, np.ndarray]) -> None:
    """The competitors compute the same numbers (on a corner, to keep it cheap)."""
    corner = {b: a[:256, :256] for b, a in bands.items()}
    names = CASES["five (ndvi evi savi ndmi nbr)"]
    ours = compute(names, corner, INFO)
    for tool, got in (("numpy", expression_indices(corner, names)),
                      ("numexpr", numexpr_indices(corner, names)),
                      ("xarray-spatial", {k: v.values for k, v in xrspatial_indices(
                          {b: xr.DataArray(a, dims=("y", "x")) for b, a in corner.items()},
                          names).items()})):
        if tool == "xarray-spatial":
            # xarray-spatial 0.5.3 _savi_cpu divides by (1 + L) where SAVI multiplies by it
            # (Huete 1988; spyndex), so its SAVI is ours / (1 + L)^2. Same work, wrong constant.
            got["savi"] = got["savi"] * np.float32(1.5 ** 2)
        for name in names:
            np.testing.assert_allclose(got[name], ours[name], rtol=1e-4, atol=1e-5, equal_nan=True,
                                       err_msg=f"{tool} {name}")
    print("check: numpy, numexpr and xarray-spatial agree with ours (rtol 1e-4) on a 256 x 256 corner")


if __name__ == "__main__":
    sys.exit(main())
