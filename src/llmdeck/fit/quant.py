"""GGUF tensor types and file types: how many bytes a tensor takes.

Block layouts are ggml's (`ggml-common.h`), the same numbers Ollama uses in `fs/ggml`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TensorType:
    id: int
    name: str
    block_elements: int
    block_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return self.block_bytes * 8 / self.block_elements

    def bytes_for(self, elements: int) -> int:
        return elements * self.block_bytes // self.block_elements


_TYPES = (
    TensorType(0, "F32", 1, 4),
    TensorType(1, "F16", 1, 2),
    TensorType(2, "Q4_0", 32, 18),
    TensorType(3, "Q4_1", 32, 20),
    TensorType(6, "Q5_0", 32, 22),
    TensorType(7, "Q5_1", 32, 24),
    TensorType(8, "Q8_0", 32, 34),
    TensorType(9, "Q8_1", 32, 36),
    TensorType(10, "Q2_K", 256, 84),
    TensorType(11, "Q3_K", 256, 110),
    TensorType(12, "Q4_K", 256, 144),
    TensorType(13, "Q5_K", 256, 176),
    TensorType(14, "Q6_K", 256, 210),
    TensorType(15, "Q8_K", 256, 292),
    TensorType(16, "IQ2_XXS", 256, 66),
    TensorType(17, "IQ2_XS", 256, 74),
    TensorType(18, "IQ3_XXS", 256, 98),
    TensorType(19, "IQ1_S", 256, 50),
    TensorType(20, "IQ4_NL", 32, 18),
    TensorType(21, "IQ3_S", 256, 110),
    TensorType(22, "IQ2_S", 256, 82),
    TensorType(23, "IQ4_XS", 256, 136),
    TensorType(24, "I8", 1, 1),
    TensorType(25, "I16", 1, 2),
    TensorType(26, "I32", 1, 4),
    TensorType(27, "I64", 1, 8),
    TensorType(28, "F64", 1, 8),
    TensorType(29, "IQ1_M", 256, 56),
    TensorType(30, "BF16", 1, 2),
    TensorType(34, "TQ1_0", 256, 54),
    TensorType(35, "TQ2_0", 256, 66),
    TensorType(39, "MXFP4", 32, 17),
)

TENSOR_TYPES: dict[int, TensorType] = {t.id: t for t in _TYPES}
TENSOR_TYPES_BY_NAME: dict[str, TensorType] = {t.name: t for t in _TYPES}


def tensor_type(key: int | str) -> TensorType:
    try:
        if isinstance(key, int):
            return TENSOR_TYPES[key]
        return TENSOR_TYPES_BY_NAME[key.upper()]
    except KeyError:
        raise ValueError(f"unknown GGUF tensor type {key!r}") from None


def tensor_bytes(shape: tuple[int, ...] | list[int], kind: int | str) -> int:
    return tensor_type(kind).bytes_for(math.prod(shape))


# llama.cpp's `llama_ftype`: the whole-file quantization Ollama shows as `quantization_level`.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}
FILE_TYPE_IDS: dict[str, int] = {name: key for key, name in FILE_TYPES.items()}


def file_type_name(value: int | str) -> str:
    """Normalise a quantization name as Ollama prints it ('q4_k_m' -> 'Q4_K_M', 'fp16' -> 'F16')."""
    if isinstance(value, int):
        if value not in FILE_TYPES:
            raise ValueError(f"unknown GGUF file type {value}")
        return FILE_TYPES[value]
    name = value.strip().upper()
    name = {"FP16": "F16", "FP32": "F32", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "Q3_K": "Q3_K_M"}.get(
        name, name
    )
    if name not in FILE_TYPE_IDS:
        raise ValueError(f"unknown quantization {value!r}")
    return name
