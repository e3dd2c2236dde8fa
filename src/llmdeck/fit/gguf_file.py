"""Read the metadata and tensor table of a GGUF file (the weights are never read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmdeck.fit.facts import TensorInfo


class GgufError(ValueError):
    pass


def read_gguf(path: Path) -> tuple[dict[str, Any], list[TensorInfo]]:
    """Key/values and tensors of a GGUF. Token arrays are reduced to their length."""
    import gguf  # deferred: it pulls in numpy, which costs start-up time the TUI does not need

    try:
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError) as error:
        raise GgufError(f"{path}: not a readable GGUF file ({error})") from error
    metadata: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if key.startswith("tokenizer.ggml.") and field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
            # A vocabulary has 100k+ entries; only its size matters here.
            metadata[key] = [None] * len(field.data)
            continue
        metadata[key] = field.contents()
    tensors = [
        TensorInfo(tensor.name, int(tensor.tensor_type), tuple(int(n) for n in tensor.shape))
        for tensor in reader.tensors
    ]
    return metadata, tensors
