"""The kernel registry: one :class:`Kernel` record per spectral index, looked up by name.

A kernel is data, not code: its ``expression`` (a small arithmetic formula over canonical band
names and named constants) is what the fused CPU (numba) and GPU (numba.cuda) loops are generated
from, and its ``reference`` is an independent plain-NumPy implementation used as the test oracle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from cluster.errors import KernelError, MissingBandError, UnknownKernelError

__all__ = [
    "BANDS",
    "FUNCTIONS",
    "Kernel",
    "canonical_order",
    "check_bands",
    "get_kernel",
    "list_kernels",
    "norm_kernels",
    "register_kernel",
]

BANDS: tuple[str, ...] = (
    "blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22",
)
"""Canonical band names (as in STAC ``eo:common_name``-style asset keys, e.g. odc-stac)."""

FUNCTIONS: tuple[str, ...] = ("sqrt", "tanh")
"""Functions an expression may call; ``sqrt`` of a negative number gives NaN."""


@dataclass(frozen=True)
class Kernel:
    """A per-pixel spectral index computed from named bands.

    Example:
        >>> from cluster.kernels import get_kernel
        >>> k = get_kernel("ndvi")
        >>> k.bands, k.expression
        (('nir', 'red'), '(nir - red) / (nir + red)')
        >>> k.spec()["version"]
        1
    """

    name: str
    """Registry key, lower case (``"ndvi"``); also the output array's name in the cube."""
    bands: tuple[str, ...]
    """Canonical band names the index reads, in the order the reference takes them."""
    expression: str
    """Scalar formula over ``bands`` and ``constants`` names; ``/`` by zero gives NaN."""
    reference: Callable[..., np.ndarray] = field(repr=False, compare=False)
    """Plain NumPy oracle: ``reference(**reflectances, **constants)`` -> float64 array."""
    constants: Mapping[str, float] = field(default_factory=dict, hash=False)
    """Named constants used by ``expression`` (e.g. EVI's G, C1, C2, L)."""
    long_name: str = ""
    """Human name, e.g. "Enhanced Vegetation Index"."""
    spyndex_name: str | None = None
    """The Awesome Spectral Indices / spyndex key this index matches, if any."""
    source: str = ""
    """Where the formula comes from (DOI or URL)."""
    gpu: bool = True
    """Whether a numba.cuda kernel can be generated for it."""
    dtype: str = "float32"
    """Natural output dtype; ``compute(output=...)`` may pack it to int16."""
    version: int = 1
    """Bump when outputs change; it is written into the Zarr attributes."""

    def __post_init__(self) -> None:
        _check_expression(self)

    @property
    def formula(self) -> str:
        """The expression with constants substituted, for humans and attributes."""
        text = self.expression
        for key, value in self.constants.items():
            text = _rename(text, {key: repr(float(value))})
        return text

    def spec(self) -> dict[str, object]:
        """What produced an array: write it into the output's attributes."""
        return {
            "name": self.name,
            "version": self.version,
            "bands": list(self.bands),
            "expression": self.expression,
            "constants": {k: float(v) for k, v in self.constants.items()},
            "spyndex_name": self.spyndex_name,
        }


_KERNELS: dict[str, Kernel] = {}


def register_kernel(kernel: Kernel) -> Kernel:
    """Add ``kernel`` to the registry; names are unique.

    Raises:
        KernelError: the name is taken.
    """
    if kernel.name in _KERNELS:
        raise KernelError(
            f"kernel {kernel.name!r} is already registered; pick another name or bump the "
            "version of the existing kernel instead"
        )
    _KERNELS[kernel.name] = kernel
    return kernel


def get_kernel(name: str) -> Kernel:
    """The kernel registered as ``name`` (case-insensitive).

    Raises:
        UnknownKernelError: nothing is registered under that name; the message lists known names.
    """
    try:
        return _KERNELS[name.lower()]
    except (KeyError, AttributeError):
        known = ", ".join(sorted(_KERNELS)) or "none"
        raise UnknownKernelError(
            f"no kernel named {name!r}; known: {known}. Check the spelling or register it with "
            "cluster.kernels.register_kernel"
        ) from None


def list_kernels() -> list[str]:
    """Names of all registered kernels, sorted."""
    return sorted(_KERNELS)


# -- checks shared by compute() and compute_reference() ----------------------------------------

def norm_kernels(names: str | Kernel | Iterable[str | Kernel]) -> tuple[Kernel, ...]:
    """Kernels for a name, a kernel, or a sequence of either; duplicates dropped, order kept.

    >>> import cluster.kernels  # registers the catalogue
    >>> [k.name for k in norm_kernels(["NDVI", "evi", "ndvi"])]
    ['ndvi', 'evi']
    """
    items = [names] if isinstance(names, (str, Kernel)) else list(names)
    if not items:
        raise KernelError("names=[] asks for no index; pass at least one kernel name, e.g. 'ndvi'")
    kernels: dict[str, Kernel] = {}
    for item in items:
        kernel = item if isinstance(item, Kernel) else get_kernel(item)
        kernels.setdefault(kernel.name, kernel)
    return tuple(kernels.values())


def check_bands(kernels: tuple[Kernel, ...], bands: Mapping[str, Any]) -> None:
    """Raise MissingBandError naming every band each kernel needs and ``bands`` lacks."""
    problems = []
    for k in kernels:
        missing = [b for b in k.bands if b not in bands]
        if missing:
            problems.append(f"{k.name!r} needs {missing!r}")
    if problems:
        raise MissingBandError(
            f"bands are missing for the requested indices: {'; '.join(problems)}; the input has "
            f"{sorted(bands)!r}. Add those bands (canonical names) or drop the indices"
        )


def canonical_order(bands: set[str]) -> tuple[str, ...]:
    """``bands`` in the order of :data:`BANDS`.

    >>> canonical_order({"nir", "blue", "red"})
    ('blue', 'red', 'nir')
    """
    return tuple(b for b in BANDS if b in bands)


# -- expressions -----------------------------------------------------------------------------

_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd,
)


def _check_expression(kernel: Kernel) -> None:
    """Validate a kernel's expression at registration time (fail fast, name the problem)."""
    where = f"kernel {kernel.name!r} expression {kernel.expression!r}"
    if kernel.name != kernel.name.lower() or not kernel.name.isidentifier():
        raise KernelError(f"kernel name {kernel.name!r} must be a lower-case identifier, e.g. 'ndvi'")
    unknown_bands = [b for b in kernel.bands if b not in BANDS]
    if unknown_bands:
        raise KernelError(
            f"kernel {kernel.name!r} uses bands {unknown_bands!r} that are not canonical; "
            f"expected names from {list(BANDS)!r}"
        )
    try:
        tree = ast.parse(kernel.expression, mode="eval")
    except SyntaxError as e:
        raise KernelError(f"{where} is not a Python expression: {e}") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise KernelError(f"{where} uses {type(node).__name__}; only + - * / ** and "
                              f"{', '.join(FUNCTIONS)} are allowed")
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
                    and len(node.args) == 1 and not node.keywords):
                raise KernelError(f"{where}: only one-argument calls of {FUNCTIONS!r} are allowed")
        elif isinstance(node, ast.Name) and node.id not in FUNCTIONS:
            names.add(node.id)
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
            raise KernelError(f"{where}: constant {node.value!r} is not a number")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exp = node.right
            if not (isinstance(exp, ast.Constant) and exp.value in (2, 0.5)):
                raise KernelError(f"{where}: only ** 2 and ** 0.5 are supported")
    unknown = names - set(kernel.bands) - set(kernel.constants)
    if unknown:
        raise KernelError(f"{where} uses names {sorted(unknown)!r} that are neither its bands "
                          f"{list(kernel.bands)!r} nor its constants {sorted(kernel.constants)!r}")
    unused = set(kernel.bands) - names
    if unused:
        raise KernelError(f"{where} does not use its bands {sorted(unused)!r}; drop them from bands")


def _rename(expression: str, mapping: Mapping[str, str]) -> str:
    """Replace whole-name identifiers in ``expression`` (used for display only)."""
    tree = ast.parse(expression, mode="eval")

    class _Sub(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            if node.id in mapping:
                return ast.parse(mapping[node.id], mode="eval").body
            return node

    return ast.unparse(_Sub().visit(tree))
