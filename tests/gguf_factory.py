"""Write small but real GGUF files, with the tensors and types a quantized model of an
architecture holds (zero-filled), using the `gguf` library."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from llmdeck.fit.quant import FILE_TYPE_IDS, tensor_type
from llmdeck.fit.synth import Architecture, gguf_name, tensors


def write_gguf(path: Path, arch: Architecture, file_type: str, *, with_tokens: bool = True) -> Path:
    writer = gguf.GGUFWriter(str(path), arch.architecture)
    name = arch.architecture
    writer.add_uint32(f"{name}.block_count", arch.block_count)
    writer.add_uint32(f"{name}.context_length", arch.context_length)
    writer.add_uint32(f"{name}.embedding_length", arch.embedding_length)
    writer.add_uint32(f"{name}.feed_forward_length", arch.feed_forward_length)
    writer.add_uint32(f"{name}.attention.head_count", arch.head_count)
    writer.add_uint32(f"{name}.attention.head_count_kv", arch.head_count_kv)
    if arch.key_length:
        writer.add_uint32(f"{name}.attention.key_length", arch.key_length)
        writer.add_uint32(f"{name}.attention.value_length", arch.value_length or arch.key_length)
    if arch.sliding_window:
        writer.add_uint32(f"{name}.attention.sliding_window", arch.sliding_window)
    if arch.expert_count:
        writer.add_uint32(f"{name}.expert_count", arch.expert_count)
        writer.add_uint32(f"{name}.expert_used_count", arch.expert_used_count)
    writer.add_uint32("general.file_type", FILE_TYPE_IDS[file_type])
    if with_tokens:
        writer.add_token_list([f"t{i}" for i in range(arch.vocab_size)])
    else:
        writer.add_uint32(f"{name}.vocab_size", arch.vocab_size)
    for layer, tensor in tensors(arch, file_type):
        full_name = gguf_name(layer, tensor)
        kind = tensor_type(tensor.type_name)
        numpy_shape = tuple(reversed(tensor.shape))
        if kind.name in ("F32", "F16"):
            dtype = np.float32 if kind.name == "F32" else np.float16
            writer.add_tensor(full_name, np.zeros(numpy_shape, dtype=dtype))
            continue
        row_bytes = kind.bytes_for(tensor.shape[0])
        data = np.zeros((*numpy_shape[:-1], row_bytes), dtype=np.uint8)
        writer.add_tensor(full_name, data, raw_dtype=gguf.GGMLQuantizationType(kind.id))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
