"""GGUF block formats as integer values, scales and offsets, with no loss.

Every format here dequantizes in llama.cpp (and in gguf-py, which transformers uses) as
``value = q · scale − offset`` per block, in float32, where ``q`` is a small integer. Splitting a block into
those three parts lets a graph carry the file's own numbers as a block-wise DequantizeLinear (and a Sub of
the per-block offset for the formats that have one) that computes exactly the same float32 values.

One small class per format registers itself in FORMATS; ``tests/llm/test_gguf_formats.py`` loops over the
registry, so a new format is tested the day it is added. Formats not listed (Q2_K, Q3_K, the IQ and FP4
families) have no exact int4/int8 form here: the gguf recipe widens them to float32 and says so."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

QK_K = 256  # elements in a K-quant super-block
FORMATS: dict[str, type[BlockFormat]] = {}


@dataclasses.dataclass
class Split:
    """One row-major tensor [rows, cols] as ``q · scale − offset`` per block of ``block`` columns."""

    q: np.ndarray  # int8 or uint8 [rows, cols]
    scale: np.ndarray  # float32 [rows, cols / block]
    offset: np.ndarray | None  # float32 [rows, cols / block], or None
    block: int
    bits: int  # 4 or 8: the integer width the values fit

    def values(self) -> np.ndarray:
        rows, cols = self.q.shape
        q = self.q.astype(np.float32).reshape(rows, cols // self.block, self.block)
        out = q * self.scale[..., None]
        if self.offset is not None:
            out = out - self.offset[..., None]
        return out.reshape(rows, cols)


def register(cls: type[BlockFormat]) -> type[BlockFormat]:
    FORMATS[cls.ggml_type] = cls
    return cls


class BlockFormat:
    ggml_type: ClassVar[str]
    elements: ClassVar[int]  # values per stored block
    block: ClassVar[int]  # values per scale
    bits: ClassVar[int]

    @classmethod
    def split_blocks(cls, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """[n, bytes per block] uint8 -> (q [n, elements], scale [n, elements/block], offset or None)."""
        raise NotImplementedError

    @classmethod
    def split(cls, raw: np.ndarray, cols: int) -> Split:
        """A tensor's raw bytes [rows, bytes per row] (gguf-py's layout) with ``cols`` values per row."""
        rows = raw.shape[0]
        blocks = np.ascontiguousarray(raw).reshape(rows * (cols // cls.elements), -1)
        q, scale, offset = cls.split_blocks(blocks)
        per_row = cols // cls.block
        return Split(q.reshape(rows, cols), scale.reshape(rows, per_row).astype(np.float32),
                     None if offset is None else offset.reshape(rows, per_row).astype(np.float32), cls.block, cls.bits)


def _f16(column: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(column).view(np.float16).astype(np.float32)


def _nibbles(packed: np.ndarray, group: int) -> np.ndarray:
    """Low nibbles of each ``group`` bytes first, then their high nibbles (ggml's layout)."""
    n = packed.shape[0]
    halves = packed.reshape(n, -1, 1, group) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    return (halves & np.uint8(0x0F)).reshape(n, -1)


def _high_bits_32(qh: np.ndarray) -> np.ndarray:
    """The fifth bit of 32 values, packed in one little-endian uint32 per block."""
    bits = np.ascontiguousarray(qh).view(np.uint32).reshape(-1, 1) >> np.arange(32, dtype=np.uint32).reshape(1, 32)
    return (bits & np.uint32(1)).astype(np.uint8)


def _k_scales_and_offsets(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K's 16-byte header: d and dmin (f16), then eight 6-bit scales and eight 6-bit mins packed in
    12 bytes; per 32-value block, scale = d·sc and offset = dmin·m."""
    d, dmin = _f16(blocks[:, 0:2]), _f16(blocks[:, 2:4])
    n = blocks.shape[0]
    low, mid, high = np.split(blocks[:, 4:16].reshape(n, 3, 4), 3, axis=1)
    sc = np.concatenate([low & 0x3F, (high & 0x0F) | ((low >> 2) & 0x30)], axis=-1).reshape(n, 8)
    mins = np.concatenate([mid & 0x3F, (high >> 4) | ((mid >> 2) & 0x30)], axis=-1).reshape(n, 8)
    return d * sc.astype(np.float32), dmin * mins.astype(np.float32)


@register
class Q8_0(BlockFormat):
    ggml_type, elements, block, bits = "Q8_0", 32, 32, 8

    @classmethod
    def split_blocks(cls, blocks):
        return blocks[:, 2:].view(np.int8), _f16(blocks[:, :2]), None


@register
class Q4_0(BlockFormat):
    ggml_type, elements, block, bits = "Q4_0", 32, 32, 4

    @classmethod
    def split_blocks(cls, blocks):
        return _nibbles(blocks[:, 2:], 16).astype(np.int8) - np.int8(8), _f16(blocks[:, :2]), None


@register
class Q4_1(BlockFormat):
    ggml_type, elements, block, bits = "Q4_1", 32, 32, 4

    @classmethod
    def split_blocks(cls, blocks):
        # value = d·q + m: the offset subtracted is -m
        return _nibbles(blocks[:, 4:], 16), _f16(blocks[:, :2]), -_f16(blocks[:, 2:4])


@register
class Q5_0(BlockFormat):
    ggml_type, elements, block, bits = "Q5_0", 32, 32, 8  # 5-bit values held in int8

    @classmethod
    def split_blocks(cls, blocks):
        q = _nibbles(blocks[:, 6:], 16) | (_high_bits_32(blocks[:, 2:6]) << np.uint8(4))
        return q.astype(np.int8) - np.int8(16), _f16(blocks[:, :2]), None


@register
class Q5_1(BlockFormat):
    ggml_type, elements, block, bits = "Q5_1", 32, 32, 8

    @classmethod
    def split_blocks(cls, blocks):
        q = _nibbles(blocks[:, 8:], 16) | (_high_bits_32(blocks[:, 4:8]) << np.uint8(4))
        return q, _f16(blocks[:, :2]), -_f16(blocks[:, 2:4])


@register
class Q4_K(BlockFormat):
    ggml_type, elements, block, bits = "Q4_K", QK_K, 32, 4

    @classmethod
    def split_blocks(cls, blocks):
        return _nibbles(blocks[:, 16:], 32), *_k_scales_and_offsets(blocks)


@register
class Q5_K(BlockFormat):
    ggml_type, elements, block, bits = "Q5_K", QK_K, 32, 8

    @classmethod
    def split_blocks(cls, blocks):
        n = blocks.shape[0]
        qh = blocks[:, 16:48].reshape(n, 1, 1, 32) >> np.arange(8, dtype=np.uint8).reshape(1, 1, 8, 1)
        high = (qh & np.uint8(1)).reshape(n, -1)
        return _nibbles(blocks[:, 48:], 32) | (high << np.uint8(4)), *_k_scales_and_offsets(blocks)


@register
class Q6_K(BlockFormat):
    ggml_type, elements, block, bits = "Q6_K", QK_K, 16, 8

    @classmethod
    def split_blocks(cls, blocks):
        n = blocks.shape[0]
        ql = _nibbles(blocks[:, :128], 64)
        qh = blocks[:, 128:192].reshape(n, -1, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
        qh = (qh & np.uint8(0x03)).reshape(n, -1)
        q = (ql | (qh << np.uint8(4))).astype(np.int8) - np.int8(32)
        scales = blocks[:, 192:208].view(np.int8).astype(np.float32)
        return q, _f16(blocks[:, 208:210]) * scales, None
