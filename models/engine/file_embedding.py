"""FileEmbedding: a model's input embedding read from its safetensors checkpoint, not copied.

A step looks up one row of the input embedding per token and reads nothing else of it, yet the
16-bit copies (models/engine/fused.py) kept the whole matrix in memory, its values rounded (see
bench/results/design-measurements.md). Where the model was loaded from a safetensors folder, the
matrix is mapped from the file instead (copy-on-write, never written): the checkpoint's exact
values, and only the pages of rows looked up are resident, as clean file pages that the kernel
may drop. `release()` (the engine calls it when idle, with trim_heap) drops them from this
process at once; a later lookup reads them back from the page cache.

`file_embedding` finds the matrix by shape among the folder's `*.safetensors` and checks sample
rows against the loaded weight, so a folder that does not hold what was loaded is never used.
"""

from __future__ import annotations

import json
import logging
import mmap
import struct
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
SAMPLE_ROWS = 17


class FileEmbedding(nn.Module):
    """An input embedding on a matrix mapped from a file, float32 out."""

    def __init__(
        self,
        path: Path,
        offset: int,
        shape: tuple[int, int],
        dtype: torch.dtype,
        padding_idx: int | None,
    ) -> None:
        super().__init__()
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        count = shape[0] * shape[1]
        size = offset - start + count * dtype.itemsize
        with path.open("rb") as file:
            self._map = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY, offset=start)
        self.weight = torch.frombuffer(
            self._map, dtype=dtype, count=count, offset=offset - start
        ).view(shape)
        self.path = path
        self.padding_idx = padding_idx
        self.num_embeddings, self.embedding_dim = shape

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight).float()

    def release(self) -> None:
        """Drop the pages looked up so far from this process's memory (Linux; elsewhere a no-op).

        Through the mmap object's own madvise, on the mapping this object made and keeps: no
        other mapping is touched, whatever other threads map meanwhile (issue 24). The mapping
        is never written (copy-on-write only so that torch gets a writable buffer), so a page
        dropped reads back from the file as it was, also to a lookup running at that moment."""
        if hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, {self.weight.dtype}, from {self.path}"


def file_embedding(folder: str | Path, embedding: nn.Embedding) -> FileEmbedding | None:
    """A FileEmbedding on the matrix of `embedding` as stored in `folder`'s safetensors files;
    None where none of them holds it (another format, a converted or sharded-away weight)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    weight = embedding.weight.detach()
    for path in sorted(folder.glob("*.safetensors")):
        try:
            for offset, shape, dtype in _candidates(path, tuple(weight.shape)):
                table = FileEmbedding(path, offset, shape, dtype, embedding.padding_idx)
                if _same_rows(table.weight, weight):
                    table.release()
                    return table
        except (OSError, ValueError, KeyError, TypeError):  # not a readable safetensors file
            logger.debug("no input embedding read from %s", path, exc_info=True)
    return None


Candidate = tuple[int, tuple[int, int], torch.dtype]  # byte offset, shape, dtype


def _candidates(path: Path, shape: tuple[int, ...]) -> list[Candidate]:
    """(byte offset, shape, dtype) of the tensors in safetensors file `path` shaped `shape`."""
    with path.open("rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        if length > path.stat().st_size - 8:
            raise ValueError(f"{path} is not a safetensors file")
        header = json.loads(file.read(length))
    found: list[Candidate] = []
    for name, entry in header.items():
        if name == "__metadata__" or tuple(entry["shape"]) != shape or len(shape) != 2:
            continue
        if entry["dtype"] in DTYPES:
            begin, end = entry["data_offsets"]
            dtype = DTYPES[entry["dtype"]]
            if end - begin == shape[0] * shape[1] * dtype.itemsize:
                found.append((8 + length + begin, (shape[0], shape[1]), dtype))
    return found


def _same_rows(table: torch.Tensor, weight: torch.Tensor) -> bool:
    rows = torch.linspace(0, weight.shape[0] - 1, SAMPLE_ROWS).long()
    return torch.equal(table[rows].float(), weight[rows].float())
