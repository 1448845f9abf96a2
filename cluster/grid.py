"""The processing grid: one CRS, one pixel size, square tiles with stable ids.

Every stage works tile by tile on this grid. A tile is ``tile_size_px`` pixels on a side;
tile ``(row, col)`` covers ``x in [x0 + col*E, x0 + (col+1)*E)`` and
``y in (y0 - (row+1)*E, y0 - row*E]`` where ``E = tile_size_px * pixel_size`` and
``(x0, y0)`` is the grid origin. Rows grow southwards (raster order); indices may be
negative, so the same grid covers the globe and tile ids never change when a cube grows.

Nothing here imports Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, NamedTuple, Sequence

import numpy as np
from affine import Affine
from pyproj import CRS
from pyproj.exceptions import CRSError

from cluster.errors import GridError

__all__ = ["BBox", "TileIndex", "GridSpec", "CubeExtent", "DEFAULT_TILE_SIZE_PX"]

DEFAULT_TILE_SIZE_PX = 512
"""512 x 512 x 2 bytes x 30 dates ~ 16 MB per band per tile: big enough that per-tile
overheads (task round trip ~1 ms, S3 request latency) are amortised, small enough that an
actor holds a tile of a dozen bands, with its source windows, in well under its 1 GiB
(:attr:`cluster.config.WorkerResources.memory_mib`)."""


class BBox(NamedTuple):
    """An axis-aligned box in some CRS's units: ``(left, bottom, right, top)``."""

    left: float
    bottom: float
    right: float
    top: float

    def intersects(self, other: "BBox") -> bool:
        """True when the two boxes share interior area.

        >>> BBox(0, 0, 10, 10).intersects(BBox(10, 0, 20, 10))
        False
        >>> BBox(0, 0, 10, 10).intersects(BBox(5, 5, 20, 20))
        True
        """
        return (
            self.left < other.right
            and other.left < self.right
            and self.bottom < other.top
            and other.bottom < self.top
        )

    def union(self, other: "BBox") -> "BBox":
        return BBox(
            min(self.left, other.left),
            min(self.bottom, other.bottom),
            max(self.right, other.right),
            max(self.top, other.top),
        )


class TileIndex(NamedTuple):
    """A tile's position on the grid: ``row`` grows southwards, ``col`` eastwards."""

    row: int
    col: int

    @property
    def id(self) -> str:
        """A stable, filesystem-safe id.

        >>> TileIndex(-3, 12).id
        'r-3_c12'
        """
        return f"r{self.row}_c{self.col}"

    @classmethod
    def from_id(cls, tile_id: str) -> "TileIndex":
        """Parse an id made by :attr:`id`.

        >>> TileIndex.from_id('r-3_c12')
        TileIndex(row=-3, col=12)
        """
        try:
            r, c = tile_id.split("_")
            if not (r.startswith("r") and c.startswith("c")):
                raise ValueError
            return cls(int(r[1:]), int(c[1:]))
        except ValueError:
            raise GridError(
                f"bad tile id {tile_id!r}; expected 'r<row>_c<col>', e.g. 'r-3_c12'"
            ) from None


@dataclass(frozen=True)
class GridSpec:
    """A tiling grid: CRS, pixel size and tile size.

    Example:
        >>> g = GridSpec("EPSG:6933", pixel_size=10.0, tile_size_px=512)
        >>> g.tile_bounds(TileIndex(0, 0))
        BBox(left=0.0, bottom=-5120.0, right=5120.0, top=0.0)
        >>> g.tile_of(5119.0, -1.0)
        TileIndex(row=0, col=0)
    """

    crs: str = "EPSG:6933"
    """Any CRS pyproj understands. The default, EASE-Grid 2.0 global, is equal-area, so
    pixel area (and so crop area) is exact everywhere."""
    pixel_size: float = 10.0
    """Pixel width in CRS units (metres for projected CRSs, degrees for geographic)."""
    tile_size_px: int = DEFAULT_TILE_SIZE_PX
    """Tile side in pixels; one tile is the unit of work and one Zarr shard footprint."""
    origin_x: float = 0.0
    origin_y: float = 0.0
    """Grid origin (top-left corner of tile (0, 0)). Zero keeps pixel edges on whole
    multiples of the pixel size, which is where UTM products put theirs."""
    pixel_size_y: float | None = None
    """Pixel height, when it differs from the width (some products' pixels are not
    square, e.g. 9.9948 x 9.9974 m); default: square pixels."""
    chunk_size_px: int | None = None
    """Inner Zarr chunk side (the unit of reading; the tile is the shard, the unit of
    writing). Default: the tile size, or 256 when the tile is larger. It must divide the
    tile size."""

    # job configs take this class as their ``grid`` block: pydantic validates the fields
    # by their annotations, runs the checks below and refuses unknown keys
    __pydantic_config__ = {"extra": "forbid"}

    def __post_init__(self) -> None:
        """Every problem at once, each naming its key (the one check of a grid: job configs
        validate their ``grid`` block through this)."""
        problems = []
        crs: CRS | None = None
        try:
            crs = CRS.from_user_input(self.crs)
        except CRSError as e:  # what pyproj raises for any input it cannot read
            problems.append(f"grid.crs {self.crs!r} is not a CRS pyproj understands ({e}); "
                            "use an EPSG code such as 'EPSG:6933' or a WKT string")
        if crs is not None and crs.is_geographic is False and crs.is_projected is False:
            problems.append(f"grid.crs {self.crs!r} is neither projected nor geographic")
        for name in ("pixel_size", "pixel_size_y"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                problems.append(f"grid.{name} must be a positive number, got {value!r}")
        for name in ("tile_size_px", "chunk_size_px"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 16):
                problems.append(f"grid.{name} must be an integer >= 16, got {value!r}")
        if not problems and self.tile_size_px % self.chunk:
            problems.append(f"grid.chunk_size_px {self.chunk} must divide grid.tile_size_px {self.tile_size_px}; "
                            "pick a divisor such as 256 or 128")
        if problems:
            raise GridError("; ".join(problems))

    @property
    def chunk(self) -> int:
        """The Zarr chunk side in pixels (:attr:`chunk_size_px` resolved)."""
        if self.chunk_size_px is not None:
            return int(self.chunk_size_px)
        return self.tile_size_px if self.tile_size_px <= 256 else 256

    @cached_property
    def pyproj_crs(self) -> CRS:
        return CRS.from_user_input(self.crs)

    @property
    def res_y(self) -> float:
        """Pixel height in CRS units."""
        return self.pixel_size if self.pixel_size_y is None else self.pixel_size_y

    @property
    def tile_extent(self) -> float:
        """Tile width in CRS units."""
        return self.tile_size_px * self.pixel_size

    @property
    def tile_extent_y(self) -> float:
        """Tile height in CRS units."""
        return self.tile_size_px * self.res_y

    def tile_bounds(self, tile: TileIndex) -> BBox:
        ex, ey = self.tile_extent, self.tile_extent_y
        left = self.origin_x + tile.col * ex
        top = self.origin_y - tile.row * ey
        return BBox(left, top - ey, left + ex, top)

    def tile_transform(self, tile: TileIndex) -> Affine:
        """The affine transform of the tile's pixel array (north-up)."""
        b = self.tile_bounds(tile)
        return Affine(self.pixel_size, 0.0, b.left, 0.0, -self.res_y, b.top)

    def tile_of(self, x: float, y: float) -> TileIndex:
        """The tile that contains the point ``(x, y)``."""
        return TileIndex(
            math.floor((self.origin_y - y) / self.tile_extent_y),
            math.floor((x - self.origin_x) / self.tile_extent),
        )

    def count_tiles(self, bbox: BBox) -> int:
        """How many tiles :meth:`tiles_for_bounds` would list, without listing them.

        >>> GridSpec("EPSG:6933", pixel_size=10.0, tile_size_px=100).count_tiles(BBox(0, -1000, 2000, 0))
        2
        """
        ex, ey = self.tile_extent, self.tile_extent_y
        eps = self.pixel_size * 1e-6
        cols = math.floor((bbox.right - eps - self.origin_x) / ex) - math.floor((bbox.left - self.origin_x) / ex) + 1
        rows = math.floor((self.origin_y - bbox.bottom - eps) / ey) - math.floor((self.origin_y - bbox.top) / ey) + 1
        return max(0, cols) * max(0, rows)

    def tiles_for_bounds(self, bbox: BBox) -> list[TileIndex]:
        """Every tile that shares area with ``bbox``, in row-major order.

        >>> g = GridSpec("EPSG:6933", pixel_size=10.0, tile_size_px=100)
        >>> g.tiles_for_bounds(BBox(0, -1000, 2000, 0))
        [TileIndex(row=0, col=0), TileIndex(row=0, col=1)]
        """
        ex, ey = self.tile_extent, self.tile_extent_y
        eps = self.pixel_size * 1e-6  # a box ending exactly on a tile edge stays out of it
        c0 = math.floor((bbox.left - self.origin_x) / ex)
        c1 = math.floor((bbox.right - eps - self.origin_x) / ex)
        r0 = math.floor((self.origin_y - bbox.top) / ey)
        r1 = math.floor((self.origin_y - bbox.bottom - eps) / ey)
        return [TileIndex(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    def pixel_area_m2(self, tile: TileIndex) -> np.ndarray:
        """Area of each pixel row of a tile in square metres, shape ``(tile_size_px,)``.

        Exact on equal-area and geographic grids (on a geographic grid, the ellipsoidal area
        of each row's latitude-longitude cell, in closed form). On other projected CRSs (UTM, ...)
        it is the nominal pixel area, whose error is the projection's area distortion (under 0.2 %
        inside a UTM zone).
        """
        n = self.tile_size_px
        crs = self.pyproj_crs
        if crs.is_geographic:
            b = self.tile_bounds(tile)
            edges = b.top - np.arange(n + 1) * self.res_y
            ell = crs.ellipsoid
            a, inv_f = (ell.semi_major_metre, ell.inverse_flattening) if ell else (6378137.0, 298.257223563)
            return _ellipsoid_cell_area(a, inv_f, edges[1:], edges[:-1], self.pixel_size)
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return np.full(n, self.pixel_size * self.res_y * unit**2)

    @property
    def is_equal_area(self) -> bool:
        """True when the CRS's projection preserves area (so pixel area is exact)."""
        crs = self.pyproj_crs
        if crs.is_geographic:
            return False
        method = (crs.coordinate_operation.method_name if crs.coordinate_operation else "").lower()
        return "equal area" in method or "equal-area" in method

    def to_dict(self) -> dict[str, object]:
        return {
            "crs": self.crs,
            "pixel_size": self.pixel_size,
            "tile_size_px": self.tile_size_px,
            "origin_x": self.origin_x,
            "origin_y": self.origin_y,
            "pixel_size_y": self.pixel_size_y,
            # only when set: a cube's grid record, and so its plan hashes, stay as they were
            **({"chunk_size_px": self.chunk_size_px} if self.chunk_size_px is not None else {}),
        }


def _ellipsoid_cell_area(a: float, inv_f: float, lat_lo: np.ndarray, lat_hi: np.ndarray,
                         dlon_deg: float) -> np.ndarray:
    """Exact area (m^2) of latitude-longitude cells on an ellipsoid.

    The zone between the equator and latitude phi has area
    ``pi b^2 [sin(phi) / (1 - e^2 sin^2(phi)) + atanh(e sin(phi)) / e]``; a cell is the
    difference of two zones times ``dlon / 360``.
    """
    f = 1.0 / inv_f if inv_f else 0.0
    e2 = f * (2 - f)
    b2 = (a * (1 - f)) ** 2
    if e2 == 0:  # a sphere
        def zone(phi: np.ndarray) -> np.ndarray:
            area: np.ndarray = 2 * math.pi * a * a * np.sin(phi)
            return area
    else:
        e = math.sqrt(e2)

        def zone(phi: np.ndarray) -> np.ndarray:
            s = np.sin(phi)
            area: np.ndarray = math.pi * b2 * (s / (1 - e2 * s * s) + np.arctanh(e * s) / e)
            return area

    lo, hi = np.radians(lat_lo), np.radians(lat_hi)
    cell_area: np.ndarray = np.abs(zone(hi) - zone(lo)) * (dlon_deg / 360.0)
    return cell_area


@dataclass(frozen=True)
class CubeExtent:
    """A rectangle of whole tiles on a grid: what one cube covers.

    ``row0, col0`` is the top-left tile; the cube's arrays are
    ``(nrows * tile_size_px, ncols * tile_size_px)`` pixels.
    """

    grid: GridSpec
    row0: int
    col0: int
    nrows: int
    ncols: int

    @classmethod
    def from_tiles(cls, grid: GridSpec, tiles: Sequence[TileIndex]) -> "CubeExtent":
        if not tiles:
            raise GridError("no tiles: the inputs do not overlap the grid anywhere")
        rows = [t.row for t in tiles]
        cols = [t.col for t in tiles]
        return cls(grid, min(rows), min(cols), max(rows) - min(rows) + 1, max(cols) - min(cols) + 1)

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` in pixels."""
        n = self.grid.tile_size_px
        return (self.nrows * n, self.ncols * n)

    @property
    def transform(self) -> Affine:
        return self.grid.tile_transform(TileIndex(self.row0, self.col0))

    @property
    def bounds(self) -> BBox:
        a = self.grid.tile_bounds(TileIndex(self.row0, self.col0))
        b = self.grid.tile_bounds(TileIndex(self.row0 + self.nrows - 1, self.col0 + self.ncols - 1))
        return a.union(b)

    def x_coords(self) -> np.ndarray:
        """Pixel-centre x coordinates, west to east."""
        t = self.transform
        return t.c + (np.arange(self.shape[1]) + 0.5) * t.a

    def y_coords(self) -> np.ndarray:
        """Pixel-centre y coordinates, north to south."""
        t = self.transform
        return t.f + (np.arange(self.shape[0]) + 0.5) * t.e

    def iter_tiles(self) -> Iterator[TileIndex]:
        for r in range(self.row0, self.row0 + self.nrows):
            for c in range(self.col0, self.col0 + self.ncols):
                yield TileIndex(r, c)

    def tile_slices(self, tile: TileIndex) -> tuple[slice, slice]:
        """The ``(y, x)`` pixel slices of ``tile`` inside the cube's arrays."""
        n = self.grid.tile_size_px
        r, c = tile.row - self.row0, tile.col - self.col0
        if not (0 <= r < self.nrows and 0 <= c < self.ncols):
            raise GridError(f"tile {tile.id!r} is outside this cube's {self.nrows}x{self.ncols} tiles")
        return slice(r * n, (r + 1) * n), slice(c * n, (c + 1) * n)

    def to_dict(self) -> dict[str, object]:
        return {"grid": self.grid.to_dict(), "row0": self.row0, "col0": self.col0,
                "nrows": self.nrows, "ncols": self.ncols}
