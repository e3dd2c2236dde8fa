"""Write small but real GGUF files, with the tensors and types a quantized model of an
architecture holds (zero-filled), using the `gguf` library."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from llmdeck.fit.quant import FILE_TYPE_IDS, tensor_type
from llmdeck.fit.synth import Architecture, gguf_name, tensors


def write_gguf(
    path: Path, arch: Architecture, file_type: str, *, with_tokens: bool = True, loadable: bool = False
) -> Path:
    """`loadable` adds what llama.cpp needs to actually load the file (a tokenizer, rope and
    norm settings) and fills the weights with small random values instead of zeros."""
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
    if loadable:
        # A SentencePiece-style vocabulary llama.cpp accepts: three control tokens (unknown,
        # begin, end), the 256 byte tokens, then ordinary pieces.
        assert arch.vocab_size > 259, "a loadable model needs room for the byte tokens"
        normal = arch.vocab_size - 259
        writer.add_token_list(["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)),
                               *(f"\u2581t{i}" for i in range(normal))])  # fmt: skip
        writer.add_token_scores([0.0] * 259 + [-float(i) for i in range(normal)])
        writer.add_token_types([2, 3, 3] + [6] * 256 + [1] * normal)
        writer.add_tokenizer_model("llama")
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_uint32(f"{name}.rope.dimension_count", arch.head_dim_k)
        writer.add_float32(f"{name}.attention.layer_norm_rms_epsilon", 1e-5)
    elif with_tokens:
        writer.add_token_list([f"t{i}" for i in range(arch.vocab_size)])
    else:
        writer.add_uint32(f"{name}.vocab_size", arch.vocab_size)
    rng = np.random.default_rng(0)
    for layer, tensor in tensors(arch, file_type):
        full_name = gguf_name(layer, tensor)
        kind = tensor_type(tensor.type_name)
        numpy_shape = tuple(reversed(tensor.shape))
        if kind.name in ("F32", "F16"):
            dtype = np.float32 if kind.name == "F32" else np.float16
            values = rng.normal(0, 0.02, numpy_shape) if loadable else np.zeros(numpy_shape)
            if loadable and tensor.name.endswith("norm"):
                values = np.ones(numpy_shape)
            writer.add_tensor(full_name, values.astype(dtype))
            continue
        row_bytes = kind.bytes_for(tensor.shape[0])
        data = np.zeros((*numpy_shape[:-1], row_bytes), dtype=np.uint8)
        if loadable:
            # Random bytes are valid quantized blocks except for their f16 scales, which could be
            # NaN; small scales everywhere are fine for a model that only has to load and run.
            data = rng.integers(0, 16, data.shape, dtype=np.uint8)
        writer.add_tensor(full_name, data, raw_dtype=gguf.GGMLQuantizationType(kind.id))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
