"""Spectral-index kernels on an NVIDIA GPU, against CuPy expressions and the device's copy bandwidth.

The same data and cases as ``benchmarks/kernels.py`` (uint16 DN bands the size of a Sentinel-2
tile, ~0.5 % nodata; NDVI, EVI and a five-index pass to float32 with NaN where a band is
nodata), with the bands already in GPU memory, as in a GPU actor that keeps them there.

Tools:
  * ``harvest-cluster``: ``cluster.kernels.compute(..., device="gpu")`` on CuPy arrays (numba
    device arrays without CuPy), writing into reused device buffers (``out=``).
    ``(fresh out)`` allocates the outputs each call; ``(5 calls)`` runs the five indices as five
    single-index calls; ``(host arrays)`` passes NumPy arrays, so the call includes the copies
    to and from the GPU (bounded by the host link, not by GPU memory).
  * ``cupy``: plain CuPy expressions (the GPU twin of the NumPy baseline), when CuPy is there.

The limit is the faster of two device-to-device copies moving the bytes NDVI moves (4 B read +
4 B written per pixel): ``cudaMemcpy`` and a grid-stride copy kernel launched like ours.
``seconds`` is the time per call with calls queued back to back (GPU busy); ``sync s`` (in the
JSON ``extra``) is one call timed alone from the host, Python launch overhead included.
Times are CUDA-event medians. ``--sweep`` also times NDVI and the five-index pass at several
pixels per load (``GpuLaunch.pack``), unroll factors and launch shapes; each new combination compiles
anew, so give it a few minutes, or narrow it with ``--packs`` and ``--unrolls`` (``--sweep
--packs 4 --unrolls 1,2`` is the setting not yet timed on a real GPU). A setting that
``compute()`` would cap (``GpuLaunch.unroll_for``) is skipped with a message. Each case first
checks that the GPU wrote the CPU's bits.

Run on a GPU machine: ``python -m benchmarks.kernels_gpu [--quick] [--json PATH] [--sweep
[--packs P,P] [--unrolls U,U]]``.
Without a GPU it exits with a message; ``NUMBA_ENABLE_CUDASIM=1 ... --size 64`` runs the logic
in numba's simulator (no meaningful numbers).
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any, Callable

import numpy as np
from numba import cuda

from benchmarks._bands import CASES, INFO, bands_for, expression_indices, make_bands
from benchmarks._report import OURS, Record, emit, parse_args
from cluster.kernels import GpuLaunch, compute

try:
    import cupy
except ImportError:  # the benchmark runs without it; the CuPy baseline is then left out
    cupy = None


def _device_put(a: np.ndarray) -> Any:
    return cupy.asarray(a) if cupy is not None else cuda.to_device(a)


def _device_empty(shape: tuple[int, ...], dtype: Any, fill: float) -> Any:
    if cupy is not None:
        return cupy.full(shape, fill, dtype=dtype)
    return cuda.to_device(np.full(shape, fill, dtype=dtype))


def _to_host(a: Any) -> np.ndarray:
    return cupy.asnumpy(a) if cupy is not None else a.copy_to_host()


def gpu_time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(seconds per call queued back to back, median seconds of one call alone), by CUDA events."""
    fn()  # warm-up: JIT compilation, CuPy's memory pool
    cuda.synchronize()
    start, stop = cuda.event(), cuda.event()
    alone = []
    for _ in range(repeat):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        alone.append(start.elapsed_time(stop) / 1e3)
    start.record()
    for _ in range(repeat):
        fn()
    stop.record()
    stop.synchronize()
    queued = start.elapsed_time(stop) / 1e3 / repeat
    return max(queued, 1e-9), max(statistics.median(alone), 1e-9)  # the simulator's events read 0


@cuda.jit
def _copy(n, src, dst):  # type: ignore[no-untyped-def]
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n, step):
        dst[i] = src[i]


def _warm_up_clocks(npx: int, seconds: float = 2.0) -> None:
    """Keep the GPU busy for a while first: an idle card reports a low SM clock until loaded."""
    src = cuda.device_array(npx, dtype=np.uint32)
    dst = cuda.device_array(npx, dtype=np.uint32)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            dst.copy_to_device(src)
        cuda.synchronize()


def copy_bandwidth(npx: int, repeat: int) -> list[tuple[str, float, float]]:
    """(how, seconds, GB/s) for copying 4 B/px on the device, counting bytes read + written."""
    src = cuda.to_device(np.arange(npx, dtype=np.uint32))
    dst = cuda.device_array(npx, dtype=np.uint32)
    launch = GpuLaunch()
    blocks = min(launch.max_blocks, (npx + launch.threads_per_block - 1) // launch.threads_per_block)
    results = []
    for how, fn in (("cudaMemcpy device to device", lambda: dst.copy_to_device(src)),
                    ("copy kernel, launched like ours",
                     lambda: _copy[blocks, launch.threads_per_block](npx, src, dst))):
        seconds, _ = gpu_time(fn, repeat)
        results.append((how, seconds, 2 * src.nbytes / seconds / 1e9))
    if not np.array_equal(dst.copy_to_host(), np.arange(npx, dtype=np.uint32)):
        raise AssertionError("the copy kernel did not copy every element")
    return results


def main(argv: list[str] | None = None) -> int:
    def extra(p: Any) -> None:
        p.add_argument("--size", type=int, default=None, help="image side in pixels")
        p.add_argument("--sweep", action="store_true", help="also time NDVI at several launch shapes")
        p.add_argument("--pack", type=int, default=GpuLaunch().pack,
                       help="pixels per load word for the main cases (GpuLaunch.pack; 1 or 4)")
        ints = lambda text: tuple(int(v) for v in text.split(","))
        p.add_argument("--packs", type=ints, default=(1, 4), metavar="P,P",
                       help="pixels per load the sweep tries (default 1,4)")
        p.add_argument("--unrolls", type=ints, default=(1, 2, 4), metavar="U,U",
                       help="unroll factors the sweep tries (default 1,2,4); each compiles for a while")

    args = parse_args(__doc__.splitlines()[0], argv, extra=extra)
    if not cuda.is_available():
        print("no CUDA GPU here (numba.cuda.is_available() is False); run this on a GPU machine",
              file=sys.stderr)
        return 2
    size = args.size or (2000 if args.quick else 10980)
    repeat = 5 if args.quick else 20
    launch = GpuLaunch(pack=args.pack)
    device = cuda.current_context().device
    name = getattr(device, "name", None) or "numba CUDA simulator"
    name = name.decode() if isinstance(name, bytes) else str(name)
    sms = int(getattr(device, "MULTIPROCESSOR_COUNT", 1))
    print(f"device: {name}, {sms} SMs; image {size} x {size} uint16; "
          f"arrays: {'CuPy' if cupy is not None else 'numba device arrays'}; "
          f"launch {launch.max_blocks} x {launch.threads_per_block} (grid-stride, "
          f"pack {launch.pack}, unroll {launch.unroll}, at most {launch.max_bodies} pixel bodies); "
          f"median of {repeat} after one warm-up")
    host = make_bands(size)
    bands = {b: _device_put(a) for b, a in host.items()}
    npx = size * size
    mpix = npx / 1e6

    _warm_up_clocks(npx)
    copies = copy_bandwidth(npx, repeat)
    copy_gbps = max(gbps for _, _, gbps in copies)
    records = [Record(tool=how, case="memory copy (the limit)", seconds=seconds,
                      mpix_per_s=mpix / seconds, gbps=gbps, fraction_of_bandwidth=gbps / copy_gbps)
               for how, seconds, gbps in copies]

    def record(tool: str, case: str, names: tuple[str, ...], timing: tuple[float, float],
               out_bytes: int = 4) -> Record:
        seconds, alone = timing
        in_bytes = 2 * npx * len(bands_for(names))
        gbps = (in_bytes + out_bytes * npx * len(names)) / seconds / 1e9
        rec = Record(tool=tool, case=case, seconds=seconds, mpix_per_s=mpix / seconds, gbps=gbps,
                     fraction_of_bandwidth=gbps / copy_gbps, extra={"sync_seconds": alone})
        records.append(rec)
        return rec

    for case, names in CASES.items():
        sub = {b: bands[b] for b in bands_for(names)}
        out = {n: _device_empty((size, size), np.float32, 7.0) for n in names}
        record(OURS, case, names, gpu_time(lambda: compute(names, sub, INFO, out=out, device="gpu",
                                                           gpu_launch=launch), repeat))
        _check_against_cpu(case, names, {n: _to_host(a) for n, a in out.items()}, host)
        record(f"{OURS} (fresh out)", case, names,
               gpu_time(lambda: compute(names, sub, INFO, device="gpu", gpu_launch=launch), repeat))
        if len(names) > 1:
            def separate() -> None:
                for n in names:
                    compute(n, sub, INFO, out=out, device="gpu", gpu_launch=launch)
            record(f"{OURS} (5 calls)", case, names, gpu_time(separate, repeat))
        if cupy is not None:
            record("cupy", case, names, gpu_time(lambda: expression_indices(sub, names, cupy), repeat))
        del out

    five = CASES["five (ndvi evi savi ndmi nbr)"]
    sub = {b: bands[b] for b in bands_for(five)}
    out16 = {n: _device_empty((size, size), np.int16, 0) for n in five}

    def separate16() -> None:
        for n in five:
            compute(n, sub, INFO, output="int16", out=out16, device="gpu", gpu_launch=launch)

    record(OURS, "five, int16 out", five, gpu_time(
        lambda: compute(five, sub, INFO, output="int16", out=out16, device="gpu", gpu_launch=launch),
        repeat), 2)
    record(f"{OURS} (5 calls)", "five, int16 out", five, gpu_time(separate16, repeat), 2)
    del out16

    ndvi_host = {b: host[b] for b in bands_for(("ndvi",))}
    host_out = {"ndvi": np.empty((size, size), np.float32)}
    rec = record(f"{OURS} (host arrays)", "ndvi", ("ndvi",), gpu_time(
        lambda: compute("ndvi", ndvi_host, INFO, out=host_out, device="gpu", gpu_launch=launch),
        max(3, repeat // 4)))
    rec.extra["note"] = "includes host-to-device and device-to-host copies"

    edge = min(256, size)  # so small that the time is the host's cost of one call
    small = {b: _device_put(host[b][:edge, :edge]) for b in bands_for(("ndvi",))}
    small_out = {"ndvi": _device_empty((edge, edge), np.float32, 7.0)}
    seconds, alone = gpu_time(lambda: compute("ndvi", small, INFO, out=small_out, device="gpu",
                                              gpu_launch=launch), repeat)
    records.append(Record(tool=OURS, case=f"ndvi {edge} x {edge} (launch cost)", seconds=seconds,
                          mpix_per_s=edge * edge / 1e6 / seconds, extra={"sync_seconds": alone}))

    if args.sweep:
        _sweep(record, bands, npx, repeat, sms, args.packs, args.unrolls)

    emit(records, args.json, meta={"device": name, "sms": sms, "pack": launch.pack,
                                   "size_px": size, "repeat": repeat, "copy_gbps": copy_gbps,
                                   "arrays": "cupy" if cupy is not None else "numba",
                                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    for case in ("five (ndvi evi savi ndmi nbr)", "five, int16 out"):
        fused = next(r for r in records if r.case == case and r.tool == OURS)
        calls = next(r for r in records if r.case == case and r.tool == f"{OURS} (5 calls)")
        print(f"{case}: fused pass {calls.seconds / fused.seconds:.2f}x faster than 5 calls")
    print("sync s (one call alone, Python launch included) for ours: " + ", ".join(
        f"{r.case} {r.extra['sync_seconds'] * 1e3:.3f} ms" for r in records if r.tool == OURS))
    if MISMATCHES:
        print("FAILED: the GPU's results differ from the CPU's:\n  " + "\n  ".join(MISMATCHES))
        return 1
    return 0


def _sweep(record: Callable[..., Record], bands: dict[str, Any], npx: int, repeat: int,
           sms: int, packs: tuple[int, ...], unrolls: tuple[int, ...]) -> None:
    """NDVI and the five-index pass at several (pixels per load, unroll, blocks x threads)."""
    size = int(round(npx ** 0.5))
    shapes = [(256, sms * 16), (256, 4096), (256, 16384), (512, 4096)]
    for case, grid in (("ndvi", shapes), ("five (ndvi evi savi ndmi nbr)", shapes[1:2])):
        names = CASES[case]
        sub = {b: bands[b] for b in bands_for(names)}
        out = {n: _device_empty((size, size), np.float32, 7.0) for n in names}
        settings = []
        for pack in packs:
            for unroll in unrolls:
                capped = GpuLaunch(pack=pack, unroll=unroll).unroll_for(len(names), pack)
                if capped == unroll:
                    settings.append((pack, unroll))
                else:  # compute() would lower it (max_bodies: compile time); not this setting
                    print(f"sweep: {case} at pack {pack} unroll {unroll} skipped: compute() caps it "
                          f"at unroll {capped} (max_bodies {GpuLaunch().max_bodies})")
        for pack, unroll in settings:
            for threads, blocks in grid:
                launch = GpuLaunch(pack=pack, unroll=unroll, max_blocks=blocks,
                                   threads_per_block=threads)
                used = min(blocks, -(-npx // (threads * unroll * pack)))
                record(f"pack {pack} unroll {unroll} {used}x{threads}", f"{case} (sweep)",
                       names, gpu_time(lambda: compute(names, sub, INFO, out=out, device="gpu",
                                                       gpu_launch=launch), repeat))
        if settings:
            _check_against_cpu(f"{case} (last sweep setting)", names,
                               {n: _to_host(a) for n, a in out.items()},
                               {b: _to_host(a) for b, a in sub.items()})


MISMATCHES: list[str] = []


def _check_against_cpu(case: str, names: tuple[str, ...], got: dict[str, np.ndarray],
                       host: dict[str, np.ndarray]) -> None:
    """Every pixel the GPU wrote has the CPU kernels' bits (noted, and the run fails at the end)."""
    needed = {b: host[b] for b in bands_for(names)}
    expected = compute(names, needed, INFO, device="cpu")
    before = len(MISMATCHES)
    for n in names:
        same = (got[n] == expected[n]) | (np.isnan(got[n]) & np.isnan(expected[n]))
        if not same.all():
            MISMATCHES.append(f"GPU {case}: {n} differs from the CPU at {int((~same).sum())} pixels")
            print("MISMATCH:", MISMATCHES[-1])
    print(f"check: GPU {case} vs the CPU kernels on all {got[names[0]].size} pixels: "
          f"{'same bits' if len(MISMATCHES) == before else 'see MISMATCH lines'}")


if __name__ == "__main__":
    sys.exit(main())
