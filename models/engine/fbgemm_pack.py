"""Packing a weight for FBGEMM's fp16 GEMM without keeping its zero padding in memory.

FBGEMM lays a weight out in blocks of 512 input rows (`PackedGemmMatrixFP16`, as torch's
`linear_prepack_fp16` builds it): where the inputs are not a multiple of 512, the last block is
still 512 rows tall, its real rows packed first and the rest a zero-filled tail at the end of the
buffer that the kernels never read (they stop at the last block's real rows). The embedded
default's 576 inputs take the room of 1024 that way, so the padding is a large share of its packed
weights (see bench/results/design-measurements.md).

`pack_fp16` packs as torch does, then gives the pages wholly inside that tail back to the OS
(`madvise(MADV_DONTNEED)`: a page given back reads as zeros again, so nothing any reader could
see changes; they are checked to be zero first). The buffer is found where glibc put it: in the
anonymous pages the call mapped (/proc/self/maps before and after; `large_allocations_mapped`
makes glibc map every allocation from 128 kB while the copy is made), at the place that holds the
packed layout's first 32 bytes. Linux with glibc only; elsewhere, or wherever anything is not as
expected, the padding stays and nothing else changes.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import functools
import logging
import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

BLOCK = 512  # FBGEMM's input rows per block
PAGE = mmap.PAGESIZE
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MAPPED_FROM = 128 << 10  # glibc's own default threshold
# After the copy: glibc's largest dynamic threshold (64-bit) and the trim threshold it pairs with.
MMAP_THRESHOLD_AFTER, TRIM_THRESHOLD_AFTER = 32 << 20, 64 << 20
MADV_DONTNEED = 4


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc with madvise and mallopt typed, once per process; None elsewhere."""
    if not Path("/proc/self/maps").exists():
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def large_allocations_mapped() -> Iterator[None]:
    """Inside: glibc serves every allocation from 128 kB with its own mapping. After: its
    thresholds are set to where its dynamic ones end (32 MB, trim 64 MB), as setting one fixes
    them."""
    libc = _libc()
    mapped = bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MAPPED_FROM))
    try:
        yield
    finally:
        if libc is not None and mapped:
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_AFTER)
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_AFTER)


def pack_fp16(weight: torch.Tensor) -> torch.ScriptObject:
    """`torch.ops.quantized.linear_prepack_fp16(weight)` ([out, in] float32), its zero tail's
    pages given back where it has one (module docstring)."""
    weight = weight.detach().float().contiguous()
    outputs, inputs = weight.shape
    libc = _libc()
    if inputs % BLOCK == 0 or libc is None or outputs < 16:
        return torch.ops.quantized.linear_prepack_fp16(weight, None)
    before = _anonymous_mappings()
    packed = torch.ops.quantized.linear_prepack_fp16(weight, None)
    try:
        released = _release_tail(libc, weight, _added(before, _anonymous_mappings()))
        logger.debug("packed %s: %d kB of zero padding released", tuple(weight.shape), released)
    except (OSError, ValueError):
        logger.debug("packed %s: padding kept", tuple(weight.shape), exc_info=True)
    return packed


def _release_tail(libc: ctypes.CDLL, weight: torch.Tensor, added: list[tuple[int, int]]) -> int:
    """Release the pages of the packed buffer's zero tail; returns the kB released."""
    outputs, inputs = weight.shape
    # The layout's first 32 bytes: input 0's weights to outputs 0..15, float16.
    head = weight[:16, 0].half().contiguous().numpy().tobytes()
    if not any(head):
        return 0
    wide = -(-outputs // 64) * 64  # columns as packed: at most this many ...
    narrow = -(-outputs // 16) * 16  # ... and at least this many
    full, last = divmod(inputs, BLOCK)
    tail_start = (full * BLOCK + last) * wide * 2  # real rows end by here
    tail_end = (full + 1) * BLOCK * narrow * 2  # zeros go on at least to here
    for start, end in added:
        base = _find_at_page_starts(start, end, head)
        if base is None:
            continue
        first = -(-(base + tail_start) // PAGE) * PAGE
        stop = min((base + tail_end) // PAGE * PAGE, end)
        if stop <= first:
            return 0
        if _memory(first, stop).any():
            raise ValueError("the padding found is not zero")
        if libc.madvise(first, stop - first, MADV_DONTNEED) != 0:
            raise OSError(ctypes.get_errno(), "madvise failed")
        return (stop - first) // 1024
    return 0


def _find_at_page_starts(start: int, end: int, head: bytes) -> int | None:
    """The address of `head` within the first 256 bytes of a page of [start, end) (where glibc
    puts an aligned allocation of its own mapping), or None."""
    pages = _memory(start, end).reshape(-1, PAGE)[:, :256]
    for index, found in enumerate(bytes(row).find(head) for row in pages):
        if found >= 0:
            return start + index * PAGE + found
    return None


def _memory(start: int, end: int) -> np.ndarray:
    """Bytes [start, end) of this process's memory, as a uint8 array (no copy)."""
    return np.ctypeslib.as_array((ctypes.c_uint8 * (end - start)).from_address(start))


def _anonymous_mappings() -> list[tuple[int, int]]:
    """This process's private anonymous writable mappings, (start, end) in address order."""
    spans = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[1].startswith("rw") and fields[1].endswith("p"):
            start, end = (int(part, 16) for part in fields[0].split("-"))
            spans.append((start, end))
    return sorted(spans)


def _added(before: list[tuple[int, int]], after: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The address ranges in `after` that no range of `before` covers (both sorted, each made
    of ranges that do not overlap)."""
    starts = [start for start, _ in before]
    added = []
    for start, end in after:
        cursor, index = start, max(0, bisect.bisect_right(starts, start) - 1)
        while index < len(before) and before[index][0] < end:
            old_start, old_end = before[index]
            if old_end > cursor:
                if old_start > cursor:
                    added.append((cursor, old_start))
                cursor = old_end
            index += 1
        if cursor < end:
            added.append((cursor, end))
    return added
