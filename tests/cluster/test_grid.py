"""Grid math against oracles: tiles cover a box exactly once; areas match geodesic areas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyproj import Geod

from cluster.errors import GridError
from cluster.grid import BBox, CubeExtent, GridSpec, TileIndex

coords = st.floats(-1e6, 1e6, allow_nan=False)


@given(x0=coords, y0=coords, w=st.floats(1, 5e4), h=st.floats(1, 5e4),
       px=st.sampled_from([10.0, 20.0, 30.0, 9.9948]), n=st.sampled_from([16, 64, 256]))
def test_grid__tiles_cover_a_box_exactly_once(x0: float, y0: float, w: float, h: float, px: float, n: int) -> None:
    grid = GridSpec("EPSG:6933", pixel_size=px, tile_size_px=n)
    box = BBox(x0, y0, x0 + w, y0 + h)
    tiles = grid.tiles_for_bounds(box)
    assert len(tiles) == len(set(tiles))
    # every tile touches the box, and sample points of the box fall in exactly one tile
    assert all(grid.tile_bounds(t).intersects(box) for t in tiles)
    for fx in (0.0, 0.37, 0.999):
        for fy in (0.001, 0.5, 1.0):  # boxes and tiles are [left, right) x (bottom, top]
            x, y = box.left + fx * w, box.bottom + fy * h
            owners = [t for t in tiles
                      if (lambda b: b.left <= x < b.right and b.bottom < y <= b.top)(grid.tile_bounds(t))]
            assert len(owners) == 1 and owners[0] == grid.tile_of(x, y)


@given(row=st.integers(-10_000, 10_000), col=st.integers(-10_000, 10_000))
def test_grid__tile_ids_round_trip(row: int, col: int) -> None:
    assert TileIndex.from_id(TileIndex(row, col).id) == TileIndex(row, col)


def test_grid__cube_extent_coordinates_are_pixel_centres() -> None:
    grid = GridSpec("EPSG:32633", pixel_size=10, tile_size_px=16, origin_x=465000, origin_y=5080000)
    ext = CubeExtent.from_tiles(grid, [TileIndex(2, 3), TileIndex(3, 5)])
    assert ext.shape == (32, 48)
    assert ext.x_coords()[0] == 465000 + 3 * 160 + 5
    assert ext.y_coords()[0] == 5080000 - 2 * 160 - 5
    ys, xs = ext.tile_slices(TileIndex(3, 4))
    assert (ys, xs) == (slice(16, 32), slice(16, 32))
    with pytest.raises(GridError, match="outside this cube"):
        ext.tile_slices(TileIndex(9, 9))


def test_grid__equal_area_pixel_area_is_exact() -> None:
    grid = GridSpec("EPSG:6933", pixel_size=20, tile_size_px=16)
    assert grid.is_equal_area
    np.testing.assert_array_equal(grid.pixel_area_m2(TileIndex(0, 0)), np.full(16, 400.0))


def test_grid__geographic_rows_have_geodesic_area() -> None:
    """On EPSG:4326, a tile's summed cell area equals the geodesic area of the tile."""
    grid = GridSpec("EPSG:4326", pixel_size=0.01, tile_size_px=32, origin_x=0, origin_y=60)
    tile = TileIndex(0, 0)
    rows = grid.pixel_area_m2(tile)
    assert rows[0] < rows[-1]  # cells grow towards the equator
    b = grid.tile_bounds(tile)
    # oracle: the geodesic area of the tile with its parallels densified (geodesic edges
    # between two far corners would cut across the parallel)
    lons = np.linspace(b.left, b.right, 2001)
    ring_lon = np.concatenate([lons, lons[::-1]])
    ring_lat = np.concatenate([np.full(2001, b.bottom), np.full(2001, b.top)])
    area, _ = Geod(ellps="WGS84").polygon_area_perimeter(ring_lon, ring_lat)
    assert math.isclose(rows.sum() * 32, abs(area), rel_tol=1e-7)
    assert not grid.is_equal_area


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crs": "EPSG:999999"}, "is not a CRS pyproj understands"),
        ({"pixel_size": -10}, "pixel_size must be a positive number"),
        ({"tile_size_px": 8}, "tile_size_px must be an integer >= 16"),
        ({"tile_size_px": 512, "chunk_size_px": 100}, "chunk_size_px 100 must divide grid.tile_size_px 512"),
        ({"pixel_size": 0, "tile_size_px": 8}, "pixel_size must be .*; grid.tile_size_px must be"),
    ],
    ids=["unknown-crs", "negative-pixel", "tiny-tile", "chunk-not-a-divisor", "every-problem-at-once"],
)
def test_grid__bad_specs_are_explained(kwargs: dict, message: str) -> None:
    with pytest.raises(GridError, match=message):
        GridSpec(**kwargs)


def test_grid__is_the_job_configs_grid_block() -> None:
    """One grid model: a job config's ``grid`` block is a GridSpec, checked by GridSpec."""
    from cluster.config import parse_config
    from cluster.errors import ConfigError
    from cluster.ingest import IngestConfig

    base = {"store": "x.zarr", "scenes": ["a.tif"], "sensor": "sentinel2-l2a"}
    cfg = parse_config(IngestConfig, {**base, "grid": {"crs": "EPSG:32633", "pixel_size": "20"}})
    assert cfg.grid == GridSpec("EPSG:32633", pixel_size=20.0)
    assert cfg.grid.chunk == 256  # the default 512 px tile holds 2 x 2 chunks
    with pytest.raises(ConfigError, match="grid.tile_sz: unknown key"):
        parse_config(IngestConfig, {**base, "grid": {"tile_sz": 256}})
    with pytest.raises(ConfigError, match="chunk_size_px 96 must divide grid.tile_size_px 256"):
        parse_config(IngestConfig, {**base, "grid": {"tile_size_px": 256, "chunk_size_px": 96}})


edge = st.integers(-40, 40).map(lambda k: k * 250.0)  # often exactly on a tile edge (tiles of 1,000 m)


@given(boxes=st.lists(st.tuples(edge, edge, st.integers(1, 20), st.integers(1, 20)), min_size=1, max_size=12),
       px=st.sampled_from([10.0, 9.9948, 20.0]))
def test_grid__scenes_per_tile_is_every_footprint_touching_each_tile(
        boxes: list[tuple[float, float, int, int]], px: float) -> None:
    """Ingest's plan: each tile's scenes, against the plain test of every tile against every
    footprint (what plan_ingest did), with footprints on and off tile edges."""
    from cluster.ingest import scenes_per_tile

    grid = GridSpec("EPSG:6933", pixel_size=px, tile_size_px=100)
    footprints = [BBox(x, y, x + w * 250.0, y + h * 250.0) for x, y, w, h in boxes]
    union = footprints[0]
    for fp in footprints[1:]:
        union = union.union(fp)
    extent = CubeExtent.from_tiles(grid, grid.tiles_for_bounds(union))
    oracle = [tuple(i for i, fp in enumerate(footprints) if fp.intersects(grid.tile_bounds(t)))
              for t in extent.iter_tiles()]
    assert list(scenes_per_tile(extent, footprints)) == oracle
