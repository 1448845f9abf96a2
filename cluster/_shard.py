"""One tile = one Zarr v3 shard, encoded and decoded whole, without zarr's per-chunk pipeline.

zarr-python writes a shard by sending each inner chunk through its asyncio codec pipeline
and a thread hop (60-240 chunks per tile); that costs 2-3x the codec work itself. Here the
same codecs (numcodecs' blosc / zstd, configured from the array's own metadata) run on
each inner chunk in one loop, and the shard index is built as
``zarr.codecs.sharding.ShardingCodec`` builds it, so the bytes are **identical** to what
zarr writes (``tests/cluster/test_store.py`` holds them to that):

* inner chunks are laid out in Morton order (zarr's own ``morton_order_iter``), back to
  back; a chunk whose every value equals the fill value is left out when the array's
  ``write_empty_chunks`` is off (zarr's default), and a shard left with no chunk at all is
  deleted, not written;
* the index is ``uint64`` ``(offset, nbytes)`` pairs in C order of the inner chunks,
  ``2**64 - 1`` for absent ones, little-endian, then its CRC-32C (``index_codecs`` bytes
  + crc32c), at the end or the start of the shard (offsets then count the index).

An unsharded array whose chunk is the tile is the same thing with one chunk and no index.
:func:`layout_of` says why an array falls outside these rules (another codec, a
big-endian machine, ...); the caller then uses zarr's own path.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numcodecs
import numpy as np
import zarr
import zarr.storage
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation
from zarr.core.buffer import default_buffer_prototype
from zarr.core.indexing import morton_order_iter
from zarr.core.sync import sync

MAX_UINT64 = np.uint64(2**64 - 1)
_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


@dataclass(frozen=True)
class ShardLayout:
    """How one array stores one shard (or, unsharded, one chunk)."""

    shard_shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fill_value: Any
    compressor: Any
    """A numcodecs codec (``encode`` / ``decode``), or None for no compression."""
    index_location: str | None
    """``"end"`` or ``"start"``; None for an unsharded array (the chunk is the shard)."""
    index_crc32c: bool
    write_empty_chunks: bool

    @property
    def chunks_per_shard(self) -> tuple[int, ...]:
        return tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape, strict=True))

    @property
    def index_nbytes(self) -> int:
        return 16 * int(np.prod(self.chunks_per_shard)) + (4 if self.index_crc32c else 0)


def layout_of(array: zarr.Array[Any]) -> ShardLayout | str:
    """The array's shard layout, or why the whole-shard path does not cover it."""
    if sys.byteorder != "little":
        return "a big-endian machine"
    meta = array.metadata
    if meta.zarr_format != 3:
        return f"a Zarr v{meta.zarr_format} array"
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biuf" or not dtype.isnative:
        return f"dtype {dtype}"
    codecs = tuple(meta.codecs)
    config = array.async_array.config
    index_location: str | None = None
    index_crc = False
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        sc = codecs[0]
        chunk_shape = tuple(int(c) for c in sc.chunk_shape)
        shard_shape = tuple(int(c) for c in array.shards or ())
        inner = tuple(sc.codecs)
        index_location = ("end" if sc.index_location == ShardingCodecIndexLocation.end else "start")
        idx = tuple(sc.index_codecs)
        if not (idx and _little(idx[0]) and all(isinstance(c, Crc32cCodec) for c in idx[1:]) and len(idx) <= 2):
            return f"shard index codecs {[c.to_dict() for c in idx]}"
        index_crc = len(idx) == 2
        if any(s % c for s, c in zip(shard_shape, chunk_shape, strict=True)):
            return f"inner chunks {chunk_shape} that do not divide the shard {shard_shape}"
    else:
        chunk_shape = shard_shape = tuple(int(c) for c in array.chunks)
        inner = codecs
    if not inner or not (_little(inner[0]) or (dtype.itemsize == 1 and isinstance(inner[0], BytesCodec))):
        return f"codecs {[c.to_dict() for c in inner]} (not starting with little-endian bytes)"
    rest = inner[1:]
    compressor: Any = None
    if len(rest) > 1:
        return f"codecs {[c.to_dict() for c in inner]} (more than one compressor)"
    if rest:
        c = rest[0]
        if isinstance(c, BloscCodec):
            # as zarr's BloscCodec._blosc_codec configures it (typesize needs numcodecs >= 0.16)
            compressor = numcodecs.Blosc(cname=c.cname.value, clevel=c.clevel, shuffle=_SHUFFLE[c.shuffle.value],
                                         blocksize=c.blocksize, typesize=c.typesize)
        elif isinstance(c, ZstdCodec):
            compressor = numcodecs.Zstd(level=c.level, checksum=c.checksum)
        else:
            return f"compressor {c.to_dict()}"
    fill = np.asarray(array.fill_value, dtype=dtype)
    return ShardLayout(shard_shape, chunk_shape, dtype, fill, compressor, index_location, index_crc,
                       bool(config.write_empty_chunks))


def _little(codec: Any) -> bool:
    return isinstance(codec, BytesCodec) and codec.endian is not None and codec.endian.value == "little"


def _empty_chunks(layout: ShardLayout, data: np.ndarray) -> np.ndarray:
    """Per inner chunk (shape ``chunks_per_shard``): every value equals the fill value, as
    zarr's ``NDBuffer.all_equal`` decides it (NaN equals a NaN fill; a float fill of 0 is
    compared bit for bit, so -0.0 is not empty)."""
    fill = layout.fill_value
    if data.dtype.kind == "f" and np.isnan(fill):
        eq = np.isnan(data)
    else:
        uint = np.dtype(f"u{data.dtype.itemsize}") if data.dtype.kind in "iuf" else data.dtype
        eq = data.view(uint) == fill.view(uint)
    split: list[int] = []
    for n, c in zip(layout.chunks_per_shard, layout.chunk_shape, strict=True):
        split += [n, c]
    blocks = eq.reshape(split)
    return np.asarray(blocks.all(axis=tuple(range(1, 2 * data.ndim, 2))))


def _chunk_slices(layout: ShardLayout, coords: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, layout.chunk_shape, strict=True))


def _encode_chunk(layout: ShardLayout, chunk: np.ndarray) -> bytes:
    raw = np.ascontiguousarray(chunk).reshape(-1).view(np.uint8)
    if layout.compressor is None:
        return raw.tobytes()
    return bytes(layout.compressor.encode(raw))


def encode_shard(layout: ShardLayout, data: np.ndarray) -> bytes | None:
    """The bytes zarr would store for one whole shard holding ``data`` (C order, the array's
    dtype, shaped like the shard); None where zarr stores nothing (every chunk empty)."""
    assert data.shape == layout.shard_shape and data.dtype == layout.dtype
    empty = (np.zeros(layout.chunks_per_shard, bool) if layout.write_empty_chunks
             else _empty_chunks(layout, data))
    if layout.index_location is None:
        return None if empty.all() else _encode_chunk(layout, data)
    index = np.full((*layout.chunks_per_shard, 2), MAX_UINT64, dtype="<u8")
    parts: list[bytes] = []
    start = 0
    for coords in morton_order_iter(layout.chunks_per_shard):
        if empty[coords]:
            continue
        blob = _encode_chunk(layout, data[_chunk_slices(layout, coords)])
        if not blob:
            continue  # zarr skips a zero-length chunk too
        index[coords] = (start, len(blob))
        parts.append(blob)
        start += len(blob)
    if not parts:
        return None
    if layout.index_location == "start":
        index[index[..., 0] != MAX_UINT64, 0] += np.uint64(layout.index_nbytes)
    index_bytes = index.tobytes()
    if layout.index_crc32c:
        index_bytes += np.uint32(google_crc32c.value(index_bytes)).astype("<u4").tobytes()
    if layout.index_location == "start":
        return index_bytes + b"".join(parts)
    parts.append(index_bytes)
    return b"".join(parts)


class ShardDecodeError(ValueError):
    """The stored bytes are not a shard this module reads (a damaged index, a bad checksum)."""


def decode_shard(layout: ShardLayout, blob: bytes | None, out: np.ndarray | None = None) -> np.ndarray:
    """The array one shard's bytes (None: no object) hold, as zarr would read it; decoded into
    ``out`` (C-contiguous, the shard's shape and dtype) when given."""
    if out is None:
        out = np.empty(layout.shard_shape, dtype=layout.dtype)
    elif out.shape != tuple(layout.shard_shape) or out.dtype != layout.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out is {out.dtype}{out.shape}; the shard is C-contiguous "
                         f"{layout.dtype}{tuple(layout.shard_shape)}")
    if blob is None:
        out[...] = layout.fill_value
        return out
    if layout.index_location is None:
        _decode_into(layout, memoryview(blob), out)
        return out
    n = layout.index_nbytes
    if len(blob) < n:
        raise ShardDecodeError(f"{len(blob)} bytes, shorter than the shard index ({n})")
    raw = blob[:n] if layout.index_location == "start" else blob[len(blob) - n:]
    if layout.index_crc32c:
        stored = np.frombuffer(raw[-4:], dtype="<u4")[0]
        raw = raw[:-4]
        if google_crc32c.value(raw) != int(stored):
            raise ShardDecodeError("the shard index's CRC-32C does not match")
    index = np.frombuffer(raw, dtype="<u8").reshape((*layout.chunks_per_shard, 2))
    view = memoryview(blob)
    for coords in np.ndindex(*layout.chunks_per_shard):
        offset, nbytes = index[coords]
        target = out[_chunk_slices(layout, coords)]
        if offset == MAX_UINT64:
            target[...] = layout.fill_value
            continue
        if int(offset) + int(nbytes) > len(blob):
            raise ShardDecodeError(f"chunk {coords} runs past the end of the shard")
        _decode_into(layout, view[int(offset):int(offset) + int(nbytes)], target)
    return out


def _decode_into(layout: ShardLayout, blob: memoryview, target: np.ndarray) -> None:
    if layout.compressor is None:
        flat = np.frombuffer(blob, dtype=layout.dtype)
    else:
        if target.flags.c_contiguous:
            layout.compressor.decode(blob, out=target)
            return
        flat = np.frombuffer(layout.compressor.decode(blob), dtype=layout.dtype)
    if flat.size != target.size:
        raise ShardDecodeError(f"a chunk of {flat.size} values where {target.size} belong")
    target[...] = flat.reshape(target.shape)


def shard_key(array: zarr.Array[Any], coords: tuple[int, ...]) -> str:
    """The store key of shard (or, unsharded, chunk) ``coords`` of ``array``."""
    key = array.metadata.encode_chunk_key(coords)
    return f"{array.path}/{key}" if array.path else key


def put_shard(array: zarr.Array[Any], coords: tuple[int, ...], blob: bytes | None) -> None:
    """Store one shard's bytes (None: delete the object, as zarr does for an empty shard)."""
    store = array.store
    key = shard_key(array, coords)
    if isinstance(store, zarr.storage.LocalStore):
        _put_local(Path(store.root) / key, blob)
        return
    if blob is None:
        sync(store.delete(key))
    else:
        sync(store.set(key, default_buffer_prototype().buffer.from_bytes(blob)))


PARTIAL_SUFFIX = ".harvest-partial"
"""A local shard being written: ``<shard>.harvest-partial`` until it is renamed into place.
One left behind means a job was killed mid-write and that tile was never redone
(``harvest verify`` lists them)."""


def _put_local(path: Path, blob: bytes | None) -> None:
    """A local shard written whole, then renamed into place (readers never see half a shard).

    zarr's LocalStore names its temporary file at random, so an actor killed mid-write leaves
    a ``<shard>.<uuid>.partial`` behind for good. This one is always ``<shard>.harvest-partial``:
    the tile is not recorded done, so its retry writes the same name and renames it away.
    """
    if blob is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)


def get_shard(array: zarr.Array[Any], coords: tuple[int, ...]) -> bytes | None:
    """One shard's bytes, None when there is no object."""
    buf = sync(array.store.get(shard_key(array, coords), prototype=default_buffer_prototype()))
    return None if buf is None else buf.to_bytes()
