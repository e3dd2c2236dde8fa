"""Where Ollama's models really are, what the store holds, and what is wrong with it (no Textual)."""

from llmdeck.store.findings import Finding, Mount, check_store
from llmdeck.store.layout import StoreContents, StoredModel, read_store
from llmdeck.store.locate import StoreDecision, Surroundings, blob_paths_from_modelfile, locate, observe

__all__ = [
    "Finding",
    "Mount",
    "StoreContents",
    "StoreDecision",
    "StoredModel",
    "Surroundings",
    "blob_paths_from_modelfile",
    "check_store",
    "locate",
    "observe",
    "read_store",
]
