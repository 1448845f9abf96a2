"""Value objects describing kernel inputs (:class:`BandInfo`) and outputs (:class:`OutputSpec`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from cluster.errors import KernelError

__all__ = ["BandInfo", "OutputSpec", "OutputLike", "norm_output", "check_out_buffer"]

_INT16_MIN = -32768
_INT16_MAX = 32767


@dataclass(frozen=True)
class BandInfo:
    """How to turn one band's stored numbers (DN) into reflectance, and which DN means "no data".

    Reflectance = ``DN * scale + offset``. A pixel is missing for an index when any band the
    index needs equals ``nodata`` (or is NaN, for float input).

    Example:
        Landsat 8 Collection 2 surface reflectance:

        >>> BandInfo(scale=2.75e-5, offset=-0.2, nodata=0)
        BandInfo(scale=2.75e-05, offset=-0.2, nodata=0)
    """

    scale: float = 1.0
    """Multiplier from DN to reflectance (CF ``scale_factor``); 1e-4 for Sentinel-2 L2A DN."""
    offset: float = 0.0
    """Added after scaling (CF ``add_offset``); e.g. -0.1 for Sentinel-2 baseline >= 04.00."""
    nodata: float | None = None
    """The DN that marks a missing pixel (CF ``_FillValue``); None: every DN is valid."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and math.isfinite(self.offset)):
            raise KernelError(
                f"BandInfo scale={self.scale!r} offset={self.offset!r} is not finite; "
                "expected finite numbers (reflectance = DN * scale + offset)"
            )


@dataclass(frozen=True)
class OutputSpec:
    """The dtype of an index array and, for integers, how values are packed (CF conventions).

    Stored value = ``round((value - add_offset) / scale_factor)``, clipped to the dtype's range
    with ``fill_value`` kept for missing pixels only. Write :meth:`attrs` next to the array so
    readers (xarray, rioxarray) unpack it.

    Example:
        >>> OutputSpec.int16().attrs()
        {'scale_factor': 0.0001, 'add_offset': 0.0, '_FillValue': -32768}
        >>> OutputSpec.int16().valid_range
        (-32767, 32767)
    """

    dtype: str = "float32"
    """``"float32"`` (missing = NaN) or ``"int16"`` (missing = ``fill_value``)."""
    scale_factor: float = 1.0
    """Value per stored unit; 1e-4 for int16 indices in [-1, 1] keeps 4 decimals."""
    add_offset: float = 0.0
    """Value of a stored 0."""
    fill_value: float | int = float("nan")
    """Stored for missing pixels: NaN for float32; -32768 or 32767 for int16."""

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "int16"):
            raise KernelError(
                f"output dtype {self.dtype!r} is not supported; expected 'float32' or 'int16'"
            )
        if self.dtype == "float32":
            if self.scale_factor != 1.0 or self.add_offset != 0.0:
                raise KernelError(
                    f"float32 output takes no scale_factor/add_offset (got {self.scale_factor!r}, "
                    f"{self.add_offset!r}); use OutputSpec.int16(...) to pack values"
                )
            return
        if not (math.isfinite(self.scale_factor) and self.scale_factor > 0):
            raise KernelError(
                f"int16 scale_factor={self.scale_factor!r} must be a positive finite number, "
                "e.g. 1e-4"
            )
        if self.fill_value not in (_INT16_MIN, _INT16_MAX):
            raise KernelError(
                f"int16 fill_value={self.fill_value!r} must be -32768 or 32767 so that it never "
                "collides with a packed value; use the default -32768"
            )

    @classmethod
    def float32(cls) -> OutputSpec:
        """Plain float32; missing pixels are NaN."""
        return cls()

    @classmethod
    def int16(cls, scale_factor: float = 1e-4, add_offset: float = 0.0,
              fill_value: int = _INT16_MIN) -> OutputSpec:
        """Packed int16 (half the bytes of float32); default 1e-4 per unit, fill -32768."""
        return cls("int16", scale_factor, add_offset, int(fill_value))

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @property
    def valid_range(self) -> tuple[int, int] | None:
        """The stored values a valid pixel may take (int16 only; the fill value is excluded)."""
        if self.dtype != "int16":
            return None
        if self.fill_value == _INT16_MIN:
            return (_INT16_MIN + 1, _INT16_MAX)
        return (_INT16_MIN, _INT16_MAX - 1)

    def attrs(self) -> dict[str, object]:
        """CF attributes for the array holding this output (``_FillValue`` etc.)."""
        if self.dtype == "float32":
            return {"_FillValue": float("nan")}
        return {"scale_factor": self.scale_factor, "add_offset": self.add_offset,
                "_FillValue": int(self.fill_value)}

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Unpack stored values to float64 with NaN for missing (the inverse of packing).

        >>> OutputSpec.int16().decode(np.array([5000, -32768], dtype=np.int16))
        array([0.5, nan])
        """
        if self.dtype == "float32":
            return np.asarray(stored, dtype=np.float64)
        values = np.asarray(stored).astype(np.float64) * self.scale_factor + self.add_offset
        values[np.asarray(stored) == self.fill_value] = np.nan
        return values


OutputLike = Union[OutputSpec, str]
"""An :class:`OutputSpec`, or ``"float32"`` / ``"int16"`` for the defaults."""


def norm_output(output: OutputLike) -> OutputSpec:
    """Normalise an :data:`OutputLike` at the boundary.

    >>> norm_output("int16").fill_value
    -32768
    """
    if isinstance(output, OutputSpec):
        return output
    if output == "float32":
        return OutputSpec.float32()
    if output == "int16":
        return OutputSpec.int16()
    raise KernelError(
        f"output={output!r} is not understood; expected 'float32', 'int16' or an OutputSpec"
    )


def check_out_buffer(name: str, buf: Any, spec: OutputSpec, shape: tuple[int, ...]) -> None:
    """Raise KernelError unless ``buf`` can receive index ``name`` in place."""
    problems = []
    if tuple(buf.shape) != shape:
        problems.append(f"shape {tuple(buf.shape)!r} != {shape!r}")
    if np.dtype(buf.dtype) != spec.np_dtype:
        problems.append(f"dtype {np.dtype(buf.dtype).name!r} != {spec.dtype!r}")
    flags = getattr(buf, "flags", None)
    if flags is not None and not flags["C_CONTIGUOUS"]:
        problems.append("not C-contiguous")
    if isinstance(buf, np.ndarray) and not buf.flags.writeable:
        problems.append("read-only")
    if problems:
        raise KernelError(f"out[{name!r}] cannot take the result: {', '.join(problems)}; pass a "
                          f"writable C-contiguous {spec.dtype} array of shape {shape!r} or omit it")
