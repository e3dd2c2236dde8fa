"""Model stores on disk, as Ollama writes them: manifests and content-addressed blobs, with real
GGUF files (written by `gguf`) as the model layers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gguf_factory import write_gguf

from llmdeck.fit.synth import Architecture

TINY = Architecture("llama", 2, 256, 512, 4, 2, 320, 2048)


def _blob(root: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs = root / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / digest.replace(":", "-")).write_bytes(data)
    return digest, len(data)


def add_model(
    root: Path, name: str, arch: Architecture = TINY, file_type: str = "Q8_0", projector: bytes = b""
) -> dict[str, object]:
    """Write `name` ("llama3.2:latest", "user/model:tag", "hf.co/org/repo:tag") into the store,
    with `projector` as a vision projector layer of its own (llava's mmproj) when given."""
    path, _, tag = name.rpartition(":")
    parts = path.split("/")
    if len(parts) == 1:
        host, namespace, model = "registry.ollama.ai", "library", parts[0]
    elif len(parts) == 2:
        host, namespace, model = "registry.ollama.ai", parts[0], parts[1]
    else:
        host, namespace, model = parts[0], "/".join(parts[1:-1]), parts[-1]
    root.mkdir(parents=True, exist_ok=True)
    gguf_path = write_gguf(root / "tmp.gguf", arch, file_type)
    model_digest, model_size = _blob(root, gguf_path.read_bytes())
    gguf_path.unlink()
    template_digest, template_size = _blob(root, b"{{ .Prompt }}")
    config = json.dumps(
        {"model_format": "gguf", "model_family": arch.architecture, "file_type": file_type}
    ).encode()
    config_digest, config_size = _blob(root, config)
    layers: list[dict[str, object]] = [
        {"mediaType": "application/vnd.ollama.image.model", "digest": model_digest, "size": model_size},
    ]
    if projector:
        projector_digest, projector_size = _blob(root, projector)
        layers.append(
            {
                "mediaType": "application/vnd.ollama.image.projector",
                "digest": projector_digest,
                "size": projector_size,
            }
        )
    layers.append(
        {
            "mediaType": "application/vnd.ollama.image.template",
            "digest": template_digest,
            "size": template_size,
        }
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layers,
    }
    target = root / "manifests" / host / namespace / model / tag
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(manifest))
    return manifest
