"""Model facts for the fit engine from the GGUF blobs of a store, without a server."""

from __future__ import annotations

from llmdeck.fit.facts import FactsError, spec_from_metadata
from llmdeck.fit.gguf_file import GgufError, read_gguf
from llmdeck.fit.projector import measure_projector, with_projector
from llmdeck.fit.spec import ModelSpec
from llmdeck.store.layout import StoredModel


def spec_from_store(model: StoredModel) -> ModelSpec:
    if model.model_blob is None:
        raise FactsError(f"{model.name}: its manifest names no model layer (not a GGUF model)")
    if not model.model_blob.is_file():
        raise FactsError(f"{model.name}: its weights blob {model.model_blob.name} is missing")
    try:
        metadata, tensors = read_gguf(model.model_blob)
    except GgufError as error:
        raise FactsError(str(error)) from error
    spec = spec_from_metadata(model.name, metadata, tensors, "store")
    return with_projector(spec, measure_projector(spec, model.projector_blobs, model.size_bytes))
