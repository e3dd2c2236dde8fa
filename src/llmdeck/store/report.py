"""The store as the models pane shows it: the decision, the contents and the findings together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmdeck.store.findings import Finding, check_store
from llmdeck.store.layout import StoreContents, free_bytes, read_store
from llmdeck.store.locate import StoreDecision, observe
from llmdeck.store.locate import locate as locate_store


@dataclass(frozen=True, slots=True)
class StoreReport:
    decision: StoreDecision
    contents: StoreContents
    findings: tuple[Finding, ...]
    free_bytes: int | None


def inspect_store(
    served_blob_paths: Sequence[Path], served_models: Sequence[str] | None, recommended_pull_bytes: int = 0
) -> StoreReport:
    """Look at this machine's store; blocking (file system, processes), so call it from a thread."""
    where = observe(served_blob_paths)
    decision = locate_store(where)
    contents = read_store(decision.path)
    findings = check_store(
        decision, contents, where, served_models=served_models, recommended_pull_bytes=recommended_pull_bytes
    )
    return StoreReport(decision, contents, tuple(findings), free_bytes(decision.path))
