"""SSTable: an immutable sorted file of data blocks, a bloom filter, a properties block, an index and a
footer.

File layout (docs/lsm-format.md, "SSTable")::

    data block 0 | ... | data block n-1 | filter block | properties block | index block | footer (52 bytes)

Every block carries the 5-byte trailer of :mod:`strom.lsm.table.block`. The index block is a block whose
keys are the last key of each data block and whose values are ``offset (u64) | stored size (u32)`` handles.
The footer is ``filter, properties and index handles | format version (u32) | masked crc32c of the preceding
44 bytes (u32) | magic (u64)``. Each key appears at most once per table (its newest version at the time the
table was written); which table is newer is recorded in the MANIFEST, so tables need no per-entry sequence
numbers.
"""

from __future__ import annotations

import mmap
import os
import struct
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate, chain
from operator import add

from crc32c import crc32c

from ..errors import CorruptionError
from . import block as blk
from .bloom import build_filter
from .cache import BlockCache
from .checksum import masked_crc
from .coding import decode_bytes, decode_varint, encode_bytes, varint

TABLE_MAGIC = 0x5354524F4D4C534D  # "STROMLSM"
TABLE_FORMAT_VERSION = 1
_FOOTER = struct.Struct("<QIQIQIIIQ")
FOOTER_SIZE = _FOOTER.size
_HANDLE = struct.Struct("<QI")
_U32 = struct.Struct("<I")
_U2 = struct.Struct("<II")
_RUN = 16  # entries decoded at a time by iter_blocks
_PLUS_8 = (8).__add__  # per-entry directory overhead in a block
MISSING: object = object()  # "this table has no entry for the key" (None means a tombstone)


@dataclass(frozen=True)
class TableSettings:
    """How to write tables (from the DB's options; passed to the worker process with each job)."""

    block_size: int
    bloom_bits_per_key: int
    compression: int
    target_file_size: float


@dataclass(eq=False)
class TableInfo:
    """What writing a table learnt about it: the facts the MANIFEST records for every table file."""

    number: int
    size: int
    entries: int
    tombstones: int
    smallest: bytes
    largest: bytes


def _encode_props(entries: int, tombstones: int, smallest: bytes, largest: bytes) -> bytes:
    return varint(entries) + varint(tombstones) + encode_bytes(smallest) + encode_bytes(largest)


def write_tables(
    chunks: Iterable[tuple[list[bytes], list[bytes | None]]],
    new_file: Iterable[tuple[int, str]],
    settings: TableSettings,
) -> list[TableInfo]:
    """Write sorted, unique entries into one or more tables, each closed near ``settings.target_file_size``.

    ``chunks`` yields ``(keys, values)`` lists in key order (None values are tombstones); block boundaries are
    found with one bisect per block over cumulative entry sizes, not per entry. ``new_file`` yields
    ``(file number, path)`` pairs for the outputs. Every output is fsynced before this returns; the caller
    fsyncs the directory. An empty input writes no file.
    """
    block_size = settings.block_size
    target_file_size = settings.target_file_size
    outputs: list[TableInfo] = []
    files = iter(new_file)
    out: _TableFile | None = None
    carry_k: list[bytes] = []
    carry_v: list[bytes | None] = []
    chunk_iter = iter(chunks)
    more = True
    while more:
        nxt = next(chunk_iter, None)
        if nxt is None:
            more = False
            keys, vals = carry_k, carry_v
        elif carry_k:
            keys, vals = carry_k + nxt[0], carry_v + nxt[1]
        else:
            keys, vals = nxt
        if not keys:
            continue
        sized = vals if None not in vals else [b"" if v is None else v for v in vals]
        cum = list(accumulate(map(_PLUS_8, map(add, map(len, keys), map(len, sized)))))  # type: ignore[arg-type]
        n = len(keys)
        start = 0
        base = 0
        while start < n:
            end = bisect_left(cum, base + block_size, start) + 1
            if end > n:
                if more:
                    break
                end = n
            if out is None:
                out = _TableFile(*next(files), settings.bloom_bits_per_key, settings.compression)
            out.add_block(keys[start:end], vals[start:end])
            base = cum[end - 1]
            start = end
            if out.offset >= target_file_size:
                outputs.append(out.finish())
                out = None
        carry_k, carry_v = keys[start:], vals[start:]
    if out is not None:
        outputs.append(out.finish())
    return outputs


class _TableFile:
    """One table being written: blocks are appended as they fill; ``finish`` writes the tail and fsyncs."""

    def __init__(self, number: int, path: str, bloom_bits: int, compression: int) -> None:
        self.number = number
        self.path = path
        self._f = open(path, "wb")  # noqa: SIM115 - closed in finish()
        self._bloom_bits = bloom_bits
        self._compression = compression
        self.offset = 0
        self._index_keys: list[bytes] = []
        self._handles: list[bytes | None] = []
        self._all_keys: list[bytes] = []
        self._entries = 0
        self._tombstones = 0
        self._smallest = b""

    def add_block(self, keys: list[bytes], vals: list[bytes | None]) -> None:
        if not self._entries:
            self._smallest = keys[0]
        self._entries += len(keys)
        self._tombstones += vals.count(None)
        self._all_keys.extend(keys)
        stored = blk.seal(blk.encode_block(keys, vals), self.offset, self._compression)
        self._f.write(stored)
        self._index_keys.append(keys[-1])
        self._handles.append(_HANDLE.pack(self.offset, len(stored)))
        self.offset += len(stored)

    def _write_raw(self, contents: bytes) -> tuple[int, int]:
        stored = blk.seal(contents, self.offset, blk.NO_COMPRESSION)
        self._f.write(stored)
        handle = (self.offset, len(stored))
        self.offset += len(stored)
        return handle

    def finish(self) -> TableInfo:
        largest = self._index_keys[-1]
        filt = build_filter(self._all_keys, len(self._all_keys), self._bloom_bits)
        f_off, f_size = self._write_raw(filt)
        props = _encode_props(self._entries, self._tombstones, self._smallest, largest)
        p_off, p_size = self._write_raw(props)
        i_off, i_size = self._write_raw(blk.encode_block(self._index_keys, self._handles))
        head = _FOOTER.pack(f_off, f_size, p_off, p_size, i_off, i_size, TABLE_FORMAT_VERSION, 0, 0)[:40]
        footer = _FOOTER.pack(
            f_off, f_size, p_off, p_size, i_off, i_size, TABLE_FORMAT_VERSION, masked_crc(head), TABLE_MAGIC
        )
        self._f.write(footer)
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        return TableInfo(
            self.number, self.offset + FOOTER_SIZE, self._entries, self._tombstones, self._smallest, largest
        )


class Table:
    """An open, immutable table: footer, index and filter are held in memory, data blocks read on demand.

    Invariants: every block handed out has passed its checksum (or came from the cache, which only holds
    verified blocks); a corrupt block raises CorruptionError naming the file and offset. The file is
    memory-mapped; after it is unlinked (compacted away) readers that still hold this object keep reading it
    safely.
    """

    def __init__(
        self, path: str, number: int, cache: BlockCache | None, stats: list[int] | None = None
    ) -> None:
        self.path = path
        self.number = number
        self._cache = cache
        self._stats = stats
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.size = os.fstat(fd).st_size
            if self.size < FOOTER_SIZE:
                raise CorruptionError(f"{path}: {self.size} bytes is too short for a table footer")
            self._map = mmap.mmap(fd, self.size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        try:
            self._open()
        except CorruptionError:
            self._map.close()
            raise
        except (struct.error, ValueError, IndexError) as exc:
            self._map.close()
            raise CorruptionError(f"{path}: malformed table: {exc}") from exc

    def _open(self) -> None:
        m = self._map
        f_off, f_size, p_off, p_size, i_off, i_size, version, crc, magic = _FOOTER.unpack_from(
            m, self.size - FOOTER_SIZE
        )
        if magic != TABLE_MAGIC:
            raise CorruptionError(f"{self.path}: bad table magic {magic:#x}")
        if masked_crc(m[self.size - FOOTER_SIZE : self.size - FOOTER_SIZE + 40]) != crc:
            raise CorruptionError(f"{self.path}: footer checksum mismatch")
        if version != TABLE_FORMAT_VERSION:
            raise CorruptionError(
                f"{self.path}: table format version {version} is not {TABLE_FORMAT_VERSION}"
            )
        self.filter = self._read_raw(f_off, f_size)
        props = self._read_raw(p_off, p_size)
        self.entries, pos = decode_varint(props, 0)
        self.tombstones, pos = decode_varint(props, pos)
        self.smallest, pos = decode_bytes(props, pos)
        self.largest, pos = decode_bytes(props, pos)
        ibuf, ik, iv, n = blk.decode_block(self._read_raw(i_off, i_size))
        self.index_keys = [ibuf[ik[i] : ik[i + 1]] for i in range(n)]
        self.handles = [_HANDLE.unpack_from(ibuf, iv[i] & blk.OFFSET_MASK) for i in range(n)]
        self.nblocks = n
        if self.filter:
            self._nbits = (len(self.filter) - 1) * 8
            self._k = self.filter[-1]
            if self._k > 30:
                self.filter = b""  # a future encoding: probe nothing, as bloom.may_contain answers "maybe"

    def _read_raw(self, off: int, size: int) -> bytes:
        if off + size > self.size - FOOTER_SIZE:
            raise CorruptionError(f"{self.path}: block handle ({off}, {size}) points past the data")
        return blk.unseal(self._map, off, size, self.path)

    def block(self, i: int) -> bytes:
        """Contents of data block ``i``, verified (from the cache when possible)."""
        if self._cache is not None:
            b = self._cache.get((self.number << 32) | i)
            if b is not None:
                return b
        return self._load_block(i)

    def _load_block(self, i: int) -> bytes:
        off, size = self.handles[i]
        if self._stats is not None:
            self._stats[0] += size
        b = self._read_raw(off, size)
        blk.check_directory(b)
        if self._cache is not None:
            self._cache.misses += 1
            self._cache.put((self.number << 32) | i, b)
        return b

    def get(self, key: bytes) -> object:
        """The value (bytes), None for a tombstone, or MISSING when the table has no entry for ``key``."""
        # bloom.may_contain's probe, inlined with the bit count and probe count decoded once at open: a call
        # per table probed costs about 3 % of a get.
        filt = self.filter
        if filt:
            nbits = self._nbits
            h = crc32c(key)
            d = ((h >> 17) | (h << 15)) & 0xFFFFFFFF
            for _ in range(self._k):
                bit = h % nbits
                if not filt[bit >> 3] >> (bit & 7) & 1:
                    return MISSING
                h = (h + d) & 0xFFFFFFFF
        return self.get_unfiltered(key)

    def get_unfiltered(self, key: bytes) -> object:
        """Like :meth:`get` without consulting the bloom filter (cheaper when the key is likely present)."""
        i = bisect_left(self.index_keys, key)
        if i == self.nblocks:
            return MISSING
        # Table.block and BlockCache.get, inlined: two calls per get cost about 3 % of it.
        cache = self._cache
        if cache is not None:
            ck = (self.number << 32) | i
            buf = cache.entries.get(ck)
            if buf is None:
                buf = self._load_block(i)
            else:
                try:  # noqa: SIM105 - contextlib.suppress costs more than the lookup on this hot path
                    cache.entries.move_to_end(ck)
                except KeyError:
                    pass
        else:
            buf = self._load_block(i)
        # Binary search over the key offsets (block layout in strom.lsm.table.block), two offsets per probe.
        size = len(buf)
        n = _U32.unpack_from(buf, size - 4)[0]
        kdir = size - 4 - 8 * (n + 1)
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) >> 1
            s, e = _U2.unpack_from(buf, kdir + 4 * mid)
            if buf[s:e] < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < n:
            s, e = _U2.unpack_from(buf, kdir + 4 * lo)
            if buf[s:e] == key:
                vs, ve = _U2.unpack_from(buf, kdir + 4 * (n + 1 + lo))
                if ve & 0x80000000:
                    return None
                return buf[vs & 0x7FFFFFFF : ve]
        return MISSING

    def iterate(
        self, start: bytes | None, end: bytes | None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes | None]]:
        """Entries with ``start <= key < end`` (None = unbounded) in key order, or reversed; tombstones
        included."""
        return chain.from_iterable(self.iter_blocks(start, end, reverse))

    def iter_blocks(
        self, start: bytes | None, end: bytes | None, reverse: bool = False
    ) -> Iterator[list[tuple[bytes, bytes | None]]]:
        """Like :meth:`iterate`, as non-empty lists of up to 16 entries, decoded only as they are consumed
        (a short range scan does not decode whole blocks)."""
        index = self.index_keys
        nblocks = self.nblocks
        if not reverse:
            b = 0 if start is None else bisect_left(index, start)
            while b < nblocks:
                decoded = blk.decode_block(self.block(b))
                lo = blk.lower_bound(decoded, start) if start is not None else 0
                last = end is not None and index[b] >= end
                hi = blk.lower_bound(decoded, end) if end is not None and last else decoded[3]
                for c in range(lo, hi, _RUN):
                    yield blk.block_items(decoded, c, min(c + _RUN, hi))
                if last:
                    return
                b += 1
                start = None
        else:
            b = nblocks - 1 if end is None else min(bisect_left(index, end), nblocks - 1)
            while b >= 0:
                decoded = blk.decode_block(self.block(b))
                hi = blk.lower_bound(decoded, end) if end is not None else decoded[3]
                at_start = start is not None and (b == 0 or index[b - 1] < start)
                lo = blk.lower_bound(decoded, start) if start is not None and at_start else 0
                for c in range(hi, lo, -_RUN):
                    items = blk.block_items(decoded, max(lo, c - _RUN), c)
                    items.reverse()
                    yield items
                if at_start:
                    return
                b -= 1
                end = None

    def verify(self) -> None:
        """Read and checksum every block (raises CorruptionError on the first bad one)."""
        for off, size in self.handles:
            blk.decode_block(self._read_raw(off, size))

    def close(self) -> None:
        """Unmap the file. Only the owner calls this, once no reader can still use the table."""
        self._map.close()
