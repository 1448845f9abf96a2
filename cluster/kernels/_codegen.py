"""Generate, compile and cache the fused loops: one pass per requested combination of indices.

For a request such as ``("ndvi", "evi")`` on ``uint16`` bands with nodata, the generator writes
a small Python module whose single function reads each band once per pixel, converts DN to
float32 reflectance, builds the per-band missing flags, evaluates every requested expression and
stores (or packs to int16) every result. The CPU flavour is a serial, vectorised ``numba.njit``
loop that :mod:`cluster.kernels._cpu` runs on slices in parallel threads; the GPU flavour is a
``numba.cuda.jit`` grid-stride loop over the same body text.

Modules are written to a cache folder named by the hash of their source, so numba's on-disk cache
(``cache=True``) lets every later process (Ray workers on the same node, the next test run) skip
compilation. When no folder is writable the function is compiled in memory instead, and a
WARNING names each folder tried and its error.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import logging
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cluster.kernels._registry import Kernel

__all__ = ["FusedPlan", "load_fused", "source_for"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class FusedPlan:
    """Everything that changes the generated code (and nothing that does not)."""

    kernels: tuple[Kernel, ...]
    bands: tuple[str, ...]
    """The union of the kernels' bands, in canonical order."""
    dtypes: tuple[str, ...]
    """NumPy dtype names of the bands as they reach the loop (e.g. ``uint16``)."""
    has_nodata: tuple[bool, ...]
    """Whether each band has a nodata DN to compare against."""
    output: str
    """``float32`` or ``int16``."""
    target: str
    """``cpu`` or ``gpu``."""
    unroll: int = 1
    """GPU only: load words each thread takes per round of the grid-stride loop."""
    pack: int = 1
    """GPU only: pixels per load word (4: uint16 bands read as uint64)."""


class _Translate(ast.NodeTransformer):
    """Rewrite a kernel expression into float32-only, NaN-safe numba code."""

    def __init__(self, kernel: Kernel, consts: dict[str, float], target: str) -> None:
        self.kernel = kernel
        self.consts = consts
        self.target = target

    def _const(self, value: float, hint: str) -> ast.Name:
        # Float literals would promote float32 math to float64 in numba; name them as float32
        # globals (numba freezes module globals as compile-time constants).
        name = f"_c_{hint}"
        self.consts[name] = float(value)
        return ast.Name(id=name, ctx=ast.Load())

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.kernel.constants:
            return self._const(self.kernel.constants[node.id], f"{self.kernel.name}_{node.id}")
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        assert isinstance(node.value, (int, float)), "the registry admits number constants only"
        key = repr(float(node.value)).replace(".", "p").replace("-", "m").replace("+", "")
        return self._const(node.value, key.replace("e", "e_"))

    def _mul(self, left: ast.expr, right: ast.expr) -> ast.expr:
        if self.target == "gpu":  # see _GPU_PRELUDE: no fused multiply-add, same bits as the CPU
            return ast.Call(func=ast.Name(id="_fmul", ctx=ast.Load()), args=[left, right], keywords=[])
        return ast.BinOp(left=left, op=ast.Mult(), right=right)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        if isinstance(node.op, ast.Pow):
            base = self.visit(node.left)
            if node.right.value == 2:  # type: ignore[attr-defined]
                return self._mul(base, base)
            return _sqrt(base)
        node = self.generic_visit(node)  # type: ignore[assignment]
        if isinstance(node.op, ast.Mult):
            return self._mul(node.left, node.right)
        if isinstance(node.op, ast.Div):
            # x / 0 -> NaN (never inf); the test keeps the simulator free of ZeroDivisionError.
            return ast.IfExp(
                test=ast.Compare(left=node.right, ops=[ast.NotEq()],
                                 comparators=[ast.Name(id="_ZERO", ctx=ast.Load())]),
                body=node, orelse=ast.Name(id="_NAN", ctx=ast.Load()))
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        arg = self.visit(node.args[0])
        name = node.func.id  # type: ignore[attr-defined]
        if name == "sqrt":
            return _sqrt(arg)
        if name == "tanh":
            # libm tanhf is an opaque call that stops LLVM vectorising the whole fused loop
            # (5-index pass 1.9 s -> see benchmarks); _tanh is a vectorisable rational form,
            # used on the GPU too so both targets give the same bits.
            return ast.Call(func=ast.Name(id="_tanh", ctx=ast.Load()), args=[arg], keywords=[])
        return ast.Call(func=ast.Attribute(value=ast.Name(id="math", ctx=ast.Load()), attr=name,
                                           ctx=ast.Load()), args=[arg], keywords=[])


def _sqrt(arg: ast.expr) -> ast.expr:
    # sqrt of a negative number -> NaN on every target (plain Python's math.sqrt would raise).
    call = ast.Call(func=ast.Attribute(value=ast.Name(id="math", ctx=ast.Load()), attr="sqrt",
                                       ctx=ast.Load()), args=[arg], keywords=[])
    return ast.IfExp(test=ast.Compare(left=arg, ops=[ast.GtE()],
                                      comparators=[ast.Name(id="_ZERO", ctx=ast.Load())]),
                     body=call, orelse=ast.Name(id="_NAN", ctx=ast.Load()))


def translate(kernel: Kernel, consts: dict[str, float], target: str = "cpu") -> str:
    """The kernel's expression as float32 numba code; fills ``consts`` with the globals it needs.

    >>> from cluster.kernels import get_kernel
    >>> translate(get_kernel("sr"), {})
    'nir / red if red != _ZERO else _NAN'
    """
    tree = ast.parse(kernel.expression, mode="eval")
    body = _Translate(kernel, consts, target).visit(tree.body)
    return ast.unparse(ast.fix_missing_locations(body))


def _mul(a: str, b: str, target: str) -> str:
    """Source of ``a * b``: on the GPU through ``_fmul`` (see :data:`_GPU_PRELUDE`)."""
    return f"_fmul({a}, {b})" if target == "gpu" else f"{a} * {b}"


def _body(plan: FusedPlan) -> tuple[list[str], dict[str, float]]:
    """The per-pixel statements shared by the CPU and GPU loops (unindented), and the float32
    globals they use."""
    lines: list[str] = []
    for band, dtype, has_nd in zip(plan.bands, plan.dtypes, plan.has_nodata, strict=True):
        is_float = np.dtype(dtype).kind == "f"
        lines.append(f"v_{band} = b_{band}[i]")
        tests = []
        if is_float:
            tests.append(f"(v_{band} != v_{band})")
        if has_nd:
            tests.append(f"(v_{band} == d_{band})")
        if tests:
            lines.append(f"m_{band} = {' | '.join(tests)}")
        lines.append(f"{band} = {_mul(f'np.float32(v_{band})', f's_{band}', plan.target)} + f_{band}")
    flagged = {b for b, dt, nd in zip(plan.bands, plan.dtypes, plan.has_nodata, strict=True)
               if nd or np.dtype(dt).kind == "f"}
    consts: dict[str, float] = {}
    for k in plan.kernels:
        lines.append(f"r_{k.name} = {translate(k, consts, plan.target)}")
        flags = [f"m_{b}" for b in k.bands if b in flagged]
        # Missing input, or a result float32 cannot hold (x/0 is already NaN; 1/1e-45 is inf).
        missing = " | ".join([*flags, f"(abs(r_{k.name}) == _INF)"])
        if plan.output == "float32":
            lines.append(f"o_{k.name}[i] = _NAN if ({missing}) else r_{k.name}")
        else:
            q = f"q_{k.name}"
            lines += [
                f"{q} = {_mul(f'(r_{k.name} - add_offset)', 'inv_scale', plan.target)}",
                f"{q} = lo if {q} < lo else {q}",  # NaN fails both tests and stays NaN
                f"{q} = hi if {q} > hi else {q}",
                # round half away from zero; the cast is never evaluated on NaN
                f"o_{k.name}[i] = fill if ({q} != {q}) | {missing} else "
                f"np.int16({q} + _HALF if {q} >= _ZERO else {q} - _HALF)",
            ]
    return lines, consts


def _params(plan: FusedPlan) -> list[str]:
    params = []
    for band, has_nd in zip(plan.bands, plan.has_nodata, strict=True):
        params += [f"b_{band}", f"s_{band}", f"f_{band}"] + ([f"d_{band}"] if has_nd else [])
    params += [f"o_{k.name}" for k in plan.kernels]
    if plan.output == "int16":
        params += ["inv_scale", "add_offset", "lo", "hi", "fill"]
    return params


def source_for(plan: FusedPlan) -> str:
    """The Python source of the module holding ``fused`` for this plan."""
    params = ", ".join(_params(plan))
    head = [
        "# Generated by cluster.kernels._codegen; do not edit. Cached by numba (cache=True).",
        f"# kernels={[k.name for k in plan.kernels]} bands={list(plan.bands)} "
        f"dtypes={list(plan.dtypes)} nodata={list(plan.has_nodata)} output={plan.output}",
        "import math",
        "import numpy as np",
    ]
    body, consts = _body(plan)
    if plan.target == "cpu":
        code = [
            "import numba",
            "",
            *(_tanh_source("cpu") if any("_tanh(" in line for line in body) else []),
            "# error_model='numpy': no ZeroDivisionError checks, so the loop vectorises. Serial",
            "# on purpose: cluster.kernels._cpu splits the pixels across threads (nogil), which",
            "# compiles 4-6x faster than parallel=True/prange for the same vectorised loop.",
            "@numba.njit(cache=True, nogil=True, error_model='numpy')",
            f"def fused(n, {params}):",
            "    for i in range(n):",
            *("        " + line for line in body),
        ]
    else:
        code = [
            *_GPU_PRELUDE,
            *(_tanh_source("gpu") if any("_tanh(" in line for line in body) else []),
            "@cuda.jit",
            f"def fused(n, {params}):",
            *_gpu_loop(plan, body),
        ]
    globals_ = [
        "_NAN = np.float32(np.nan)",
        "_INF = np.float32(np.inf)",
        "_ZERO = np.float32(0.0)",
        "_HALF = np.float32(0.5)",
        *(f"{name} = np.float32({value!r})" for name, value in sorted(consts.items())),
        *(["_M16 = np.uint64(0xFFFF)", *(f"_SH{j} = np.uint64({16 * j})" for j in range(4))]
          if plan.target == "gpu" and plan.pack > 1 else []),
        "",
    ]
    return "\n".join(head + globals_ + code) + "\n"


# tanh(x) = x P(x^2) / Q(x^2) on x clamped to +-7.9053 (where float32 tanh is 1), the rational
# approximation Eigen uses for float (generic_fast_tanh_float); max abs error 4e-7 on [-10, 10]
# against float64 tanh (checked in tests). NaN stays NaN (comparisons with NaN are false).
_TANH_CONSTS = [
    "_T_CLAMP = np.float32(7.90531110763549805)",
    "_T_NCLAMP = np.float32(-7.90531110763549805)",
    "_T_A1 = np.float32(4.89352455891786e-03)",
    "_T_A3 = np.float32(6.37261928875436e-04)",
    "_T_A5 = np.float32(1.48572235717979e-05)",
    "_T_A7 = np.float32(5.12229709037114e-08)",
    "_T_A9 = np.float32(-8.60467152213735e-11)",
    "_T_A11 = np.float32(2.00018790482477e-13)",
    "_T_A13 = np.float32(-2.76076847742355e-16)",
    "_T_B0 = np.float32(4.89352518554385e-03)",
    "_T_B2 = np.float32(2.26843463243900e-03)",
    "_T_B4 = np.float32(1.18534705686654e-04)",
    "_T_B6 = np.float32(1.19825839466702e-06)",
    "",
]


def _tanh_source(target: str) -> list[str]:
    """``_tanh`` for ``target``: the same operations in the same order, so the same bits."""
    def mul(a: str, b: str) -> str:
        return _mul(a, b, target)

    decorator = ("@cuda.jit(device=True)" if target == "gpu"
                 else "@numba.njit(inline='always', error_model='numpy')")
    lines = [decorator, "def _tanh(x):",
             "    x = _T_CLAMP if x > _T_CLAMP else x",
             "    x = _T_NCLAMP if x < _T_NCLAMP else x",
             f"    x2 = {mul('x', 'x')}",
             f"    p = {mul('_T_A13', 'x2')} + _T_A11"]
    lines += [f"    p = {mul('p', 'x2')} + _T_A{k}" for k in (9, 7, 5, 3, 1)]
    lines += [f"    q = {mul('_T_B6', 'x2')} + _T_B4"]
    lines += [f"    q = {mul('q', 'x2')} + _T_B{k}" for k in (2, 0)]
    lines += [f"    return {mul('x', 'p')} / q", ""]
    return _TANH_CONSTS + lines


# NVVM contracts a * b + c into one fused multiply-add by default (-fma=1, also without
# fastmath), which rounds once where the CPU loop rounds twice: DN 1000 * 1e-4 - 0.1 is then
# 1.5e-9 on the GPU and 0 on the CPU, and a zero denominator (NaN) becomes a finite value.
# libdevice's __nv_fmul_rn is never contracted, so the GPU gives the CPU's bits.
# _bits32/_bits16: an output value's bits, zero-extended to uint64, so four pixels' results
# leave a thread in one or two 8-byte stores (``pack=4``) instead of four narrow ones.
_GPU_PRELUDE = [
    "from numba import config, cuda",
    "",
    "if getattr(config, 'ENABLE_CUDASIM', 0):  # the simulator computes with NumPy scalars",
    "    def _fmul(a, b):",
    "        return a * b",
    "",
    "    def _bits32(x):",
    "        return np.uint64(np.float32(x).view(np.uint32))",
    "",
    "    def _bits16(x):",
    "        return np.uint64(np.int16(x).view(np.uint16))",
    "else:",
    "    from numba.cuda.libdevice import float_as_int as _float_as_int",
    "    from numba.cuda.libdevice import fmul_rn as _fmul",
    "",
    "    @cuda.jit(device=True)",
    "    def _bits32(x):",
    "        return np.uint64(np.uint32(_float_as_int(x)))",
    "",
    "    @cuda.jit(device=True)",
    "    def _bits16(x):",
    "        return np.uint64(np.uint16(np.int16(x)))",
    "",
]


class _Suffix(ast.NodeTransformer):
    """Rename per-pixel locals ``x`` to ``x_<k>`` (one copy of the body per unrolled pixel)."""

    def __init__(self, names: set[str], k: int) -> None:
        self.names = names
        self.k = k

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.names:
            return ast.Name(id=f"{node.id}_{self.k}", ctx=node.ctx)
        return node


def _gpu_loop(plan: FusedPlan, body: list[str]) -> list[str]:
    """A grid-stride loop over load words: ``plan.pack`` pixels per word, ``plan.unroll`` words
    per thread per round, one grid apart; ``body`` is :func:`_body`'s per-pixel code.

    With ``pack=4`` each uint16 band is read as uint64 words (one 8-byte load per 4 pixels, not
    four 2-byte loads) and each output is written as uint64 words too: a word's four results
    leave in one 8-byte store (int16) or two (float32), not four narrow stores 8 or 16 bytes
    apart across the warp. All of a round's loads are issued before any of its stores (numba
    cannot prove the outputs do not alias the inputs, so it keeps that order): more bytes in
    flight per thread, which a bandwidth-bound kernel on a big GPU needs. The caller makes
    ``n`` a multiple of ``pack``; the last partial round runs one word at a time.
    """
    local = {"i"} | {f"{p}_{b}" for b in plan.bands for p in ("v", "m")} | set(plan.bands)
    local |= {f"{p}_{k.name}" for k in plan.kernels for p in ("r", "q", "x")}
    per_pixel = [line for line in body if not line.startswith("v_")]
    pack = plan.pack
    if pack > 1:  # keep each result in x_<name>; the word stores below write them
        per_pixel = [re.sub(r"^o_(\w+)\[i\] = ", r"x_\1 = ", line) for line in per_pixel]

    def stores(w: int) -> list[str]:
        word = f"(e + {w} * step)"
        lines = []
        for k in plan.kernels:
            x = [f"x_{k.name}_{w * pack + j}" for j in range(pack)]
            if plan.output == "float32":  # 2 pixels per uint64 word
                lines += [f"o_{k.name}[2 * {word} + {h}] = _bits32({x[2 * h]}) | "
                          f"(_bits32({x[2 * h + 1]}) << _SH2)" for h in range(pack // 2)]
            else:  # int16: 4 pixels per uint64 word
                lines.append(f"o_{k.name}[{word}] = " + " | ".join(
                    f"(_bits16({x[j]}) << _SH{j})" for j in range(pack)))
        return lines

    def one_round(words: int) -> list[str]:
        loads, rest = [], []
        for w in range(words):
            loads += [f"w_{b}_{w} = b_{b}[e + {w} * step]" for b in plan.bands]
            for j in range(pack):
                k = w * pack + j
                if pack == 1:
                    rest.append(f"i_{k} = e + {w} * step")
                rest += [f"v_{b}_{k} = " + (f"w_{b}_{w}" if pack == 1 else
                                             f"np.uint16((w_{b}_{w} >> _SH{j}) & _M16)")
                         for b in plan.bands]
                rest += [ast.unparse(ast.fix_missing_locations(_Suffix(local, k).visit(ast.parse(line))))
                         for line in per_pixel]
            if pack > 1:
                rest += stores(w)
        return ["        " + line for line in loads + rest]

    return [
        "    e = cuda.grid(1)",
        "    step = cuda.gridsize(1)",
        f"    words = n // {pack}",
        f"    while e + {plan.unroll - 1} * step < words:",
        *one_round(plan.unroll),
        f"        e += {plan.unroll} * step",
        "    while e < words:",
        *one_round(1),
        "        e += step",
    ]


_LOCK = threading.Lock()
_LOADED: dict[FusedPlan, Callable[..., Any]] = {}


def _cache_dir() -> Path | None:
    """A private, writable folder for generated modules, or None (compile in memory, no cache).

    ``$NUMBA_CACHE_DIR/harvest_kernels`` when numba's cache is redirected, else a per-user folder
    in the system temp dir: node-local and shared by every process of the user (Ray workers,
    test runs that swap ``$HOME``). A folder someone else owns or can write to is refused, since
    modules in it are imported. Every refused folder is logged (WARNING) with the reason.
    """
    numba_cache = os.environ.get("NUMBA_CACHE_DIR")
    candidates = [Path(numba_cache) / "harvest_kernels"] if numba_cache else []
    candidates.append(Path(tempfile.gettempdir()) / f"harvest-cluster-kernels-{os.getuid()}")
    refused = []
    for path in candidates:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = path.stat()
        except OSError as e:
            refused.append(f"{str(path)!r}: {type(e).__name__}: {e}")
            continue
        if st.st_uid == os.getuid() and not st.st_mode & 0o022 and os.access(path, os.W_OK):
            break
        refused.append(f"{str(path)!r}: not a private writable folder (owner uid {st.st_uid}, "
                       f"mode {st.st_mode & 0o777:o}; expected uid {os.getuid()}, not group- or "
                       "other-writable)")
    else:
        path = None
    if refused:
        _warn_once(f"kernel module cache folder refused ({'; '.join(refused)}); "
                   + (f"using {str(path)!r}" if path is not None else
                      "compiling the fused kernels in memory: every process compiles them again "
                      "(about a second each). Set NUMBA_CACHE_DIR to a writable folder"))
    return path


_warned: set[str] = set()
_LOCK_WARN = threading.Lock()


def _warn_once(message: str) -> None:
    """Log ``message`` at WARNING the first time this process sees it (one per plan would spam)."""
    with _LOCK_WARN:
        if message in _warned:
            return
        _warned.add(message)
    log.warning(message)


def load_fused(plan: FusedPlan) -> Callable[..., Any]:
    """The compiled (lazily, on first call) fused function for ``plan``; memoised per process."""
    fn = _LOADED.get(plan)
    if fn is not None:
        return fn
    with _LOCK:
        fn = _LOADED.get(plan)
        if fn is None:
            fn = _import(source_for(plan), plan.target)
            _LOADED[plan] = fn
    return fn


def _import(source: str, target: str) -> Callable[..., Any]:
    digest = hashlib.sha1(source.encode()).hexdigest()[:20]
    name = f"_harvest_kernel_{target}_{digest}"
    folder = _cache_dir()
    if folder is not None:
        path = folder / f"{name}.py"
        try:
            if not path.exists() or path.read_text() != source:
                tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
                tmp.write_text(source)
                os.replace(tmp, path)  # atomic: concurrent workers never see half a file
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module.fused  # type: ignore[no-any-return]
        except OSError as e:
            _warn_once(f"cannot write or import the kernel module in {str(folder)!r} "
                       f"({type(e).__name__}: {e}); compiling it in memory, not cached on disk")
    namespace: dict[str, Any] = {"__name__": name}
    exec(compile(source.replace("cache=True", "cache=False"), f"<{name}>", "exec"), namespace)
    return namespace["fused"]  # type: ignore[no-any-return]
