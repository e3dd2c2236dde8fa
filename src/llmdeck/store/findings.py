"""What is wrong (or worth knowing) about the models store, each with a fix the user can apply."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmdeck.store.layout import StoreContents, free_bytes, is_dir, nearest_existing, read_store
from llmdeck.store.locate import StoreDecision, Surroundings

Level = Literal["error", "warning", "info"]
GIB = 1024**3
LOW_DISK_BYTES = 10 * GIB
MISSPELLINGS = (
    "OLLAMA_MODELS_DIR",
    "OLLAMA_MODEL",
    "OLLAMA_MODELS_PATH",
    "OLLAMA_MODEL_DIR",
    "OLLAMA_MODEL_PATH",
)
_LEVEL_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    code: str
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"level": self.level, "code": self.code, "message": self.message, "fix": self.fix}


@dataclass(frozen=True, slots=True)
class Mount:
    path: Path
    total_bytes: int
    free_bytes: int


def check_store(
    decision: StoreDecision,
    contents: StoreContents,
    where: Surroundings,
    *,
    mounts: Sequence[Mount] | None = None,
    recommended_pull_bytes: int = 0,
    served_models: Sequence[str] | None = None,
) -> list[Finding]:
    """Every finding for the decided store, errors first."""
    findings: list[Finding] = []
    path = decision.path
    if contents.exists and str(path) in contents.unreadable:
        findings.append(
            Finding(
                "warning",
                "not-readable",
                f"llmdeck cannot look inside {path} (permission denied)",
                "Run llmdeck as the server's user, or `sudo llmdeck doctor`.",
            )
        )
    elif not contents.exists:
        if decision.source == "default":
            findings.append(
                Finding(
                    "info",
                    "missing-dir",
                    f"{path} does not exist yet: no model was pulled",
                    "Pull a model (`ollama pull llama3.2`); Ollama creates the folder.",
                )
            )
        else:
            findings.append(
                Finding(
                    "error",
                    "missing-dir",
                    f"the server is told to use {path}, which does not exist",
                    f"Create it (`mkdir -p {path}`) and give it to the server's user, or fix "
                    "OLLAMA_MODELS where the server is started.",
                )
            )
    elif not writable_by(path, decision.server_user):
        who = decision.server_user or "this user"
        findings.append(
            Finding(
                "error",
                "not-writable",
                f"{who} cannot write to {path}: pulls will fail",
                f"sudo chown -R {decision.server_user or os.environ.get('USER', 'USER')}: {path}",
            )
        )
    findings += _misspelled(where)
    client = where.environ.get("OLLAMA_MODELS", "").strip()
    if (
        client
        and decision.source in ("server", "server-process", "systemd")
        and not _same(Path(client), path)
    ):
        findings.append(
            Finding(
                "warning",
                "client-only-env",
                f"OLLAMA_MODELS={client} is set for llmdeck, but the server uses {path}",
                "Set OLLAMA_MODELS where the server starts (for the systemd service: "
                '`sudo systemctl edit ollama`, Environment="OLLAMA_MODELS=..."), then restart it.',
            )
        )
    # The decided store is already read: only the other candidates need a look.
    stores_with_models = [
        c
        for c in decision.candidates
        if (contents.models if c == path else is_dir(c) and read_store(c).models)
    ]
    if len({_resolved(c) for c in stores_with_models}) > 1:
        listed = ", ".join(str(c) for c in stores_with_models)
        findings.append(
            Finding(
                "warning",
                "two-stores",
                f"models are stored in more than one place: {listed}",
                f"Keep the one the server uses ({path}); move or delete the others "
                "(`ollama rm` with each server, or remove the folder).",
            )
        )
    for model in contents.models:
        if model.missing_blobs:
            findings.append(
                Finding(
                    "error",
                    "missing-blob",
                    f"{model.name} is broken: {len(model.missing_blobs)} of its blobs are missing",
                    f"`ollama rm {model.name}` then `ollama pull {model.name}`.",
                )
            )
    if contents.orphan_blobs:
        findings.append(
            Finding(
                "warning",
                "orphan-blob",
                f"{len(contents.orphan_blobs)} blobs belong to no model and waste "
                f"{contents.orphan_bytes / GIB:.1f} GiB",
                "Restart the server (it prunes unused blobs at start unless OLLAMA_NOPRUNE is set), "
                f"or delete them from {path / 'blobs'}.",
            )
        )
    if contents.partial_files:
        findings.append(
            Finding(
                "warning",
                "partial-download",
                f"{contents.partial_downloads} unfinished downloads take "
                f"{contents.partial_bytes / GIB:.1f} GiB",
                "Run the pull again to finish it, or delete the -partial files.",
            )
        )
    if contents.unreadable:
        findings.append(
            Finding(
                "warning",
                "bad-manifest",
                f"manifests that are not Ollama manifests: {', '.join(contents.unreadable)}",
                "Remove them, or pull those models again.",
            )
        )
    if served_models is not None:
        on_disk = {m.name for m in contents.models}
        served = set(served_models)
        if on_disk - served:
            findings.append(
                Finding(
                    "info",
                    "not-served",
                    f"on disk but not listed by the server: {', '.join(sorted(on_disk - served))}",
                    "The server may use another store; see the store decision above.",
                )
            )
        if served - on_disk and contents.exists:
            findings.append(
                Finding(
                    "info",
                    "not-on-disk",
                    f"listed by the server but not in {path}: {', '.join(sorted(served - on_disk))}",
                    "The server uses another store than this one.",
                )
            )
    if contents.exists:
        findings += _disk(path, mounts, recommended_pull_bytes)
    return sorted(findings, key=lambda finding: _LEVEL_ORDER[finding.level])


def _misspelled(where: Surroundings) -> list[Finding]:
    found = []
    environments: list[tuple[str, Mapping[str, str]]] = [("llmdeck's environment", where.environ)]
    environments += [(f"the ollama process {p.pid}", p.environ) for p in where.server_processes if p.environ]
    environments += [(str(u.path), u.environment) for u in where.systemd_units]
    for place, environ in environments:
        if environ.get("OLLAMA_MODELS"):
            continue
        for name, value in environ.items():
            # Only a value that looks like a folder: OLLAMA_MODEL=llama3 names a model, not a store.
            if not _looks_like_path(value):
                continue
            if name != "OLLAMA_MODELS" and (name.upper() in MISSPELLINGS or name.upper() == "OLLAMA_MODELS"):
                found.append(
                    Finding(
                        "warning",
                        "misspelled-env",
                        f"{name}={value} is set in {place}, but Ollama only reads OLLAMA_MODELS",
                        f"Rename it: OLLAMA_MODELS={value}",
                    )
                )
    return found


def _looks_like_path(value: str) -> bool:
    text = value.strip()
    return text.startswith(("/", "~", ".", "\\")) or "/" in text or "\\" in text or text[1:3] == ":\\"


def _disk(path: Path, mounts: Sequence[Mount] | None, recommended_pull_bytes: int) -> list[Finding]:
    existing = nearest_existing(path)
    free = free_bytes(existing)
    if free is None:
        return []
    findings = []
    needed = max(LOW_DISK_BYTES, recommended_pull_bytes)
    if free < needed:
        findings.append(
            Finding(
                "warning",
                "low-disk",
                f"only {free / GIB:.1f} GiB free where models are stored ({needed / GIB:.1f} GiB wanted)",
                "Free space, or move the store to a bigger drive and set OLLAMA_MODELS for the server.",
            )
        )
    all_mounts = list(mounts) if mounts is not None else system_mounts()
    store_mount = _mount_of(existing, all_mounts)
    if store_mount is not None and _is_system_drive(store_mount.path):
        bigger = [
            m
            for m in all_mounts
            if m.path != store_mount.path and m.free_bytes > store_mount.free_bytes + 10 * GIB
        ]
        if bigger:
            best = max(bigger, key=lambda m: m.free_bytes)
            findings.append(
                Finding(
                    "info",
                    "system-drive",
                    f"the store is on the system drive ({store_mount.path}, "
                    f"{store_mount.free_bytes / GIB:.0f} GiB free) while {best.path} has "
                    f"{best.free_bytes / GIB:.0f} GiB free",
                    f"Move the models to {best.path} and set OLLAMA_MODELS for the server.",
                )
            )
    return findings


def _is_system_drive(path: Path) -> bool:
    text = str(path).rstrip("\\/")
    return text in ("", "/") or text.upper() == "C:"


def _mount_of(path: Path, mounts: Sequence[Mount]) -> Mount | None:
    resolved = _resolved(path)
    matching = [m for m in mounts if resolved == _resolved(m.path) or _resolved(m.path) in resolved.parents]
    return max(matching, key=lambda m: len(str(m.path)), default=None)


def system_mounts() -> list[Mount]:
    import psutil

    mounts = []
    for partition in psutil.disk_partitions(all=False):
        try:
            usage = shutil.disk_usage(partition.mountpoint)
        except OSError:
            continue
        mounts.append(Mount(Path(partition.mountpoint), usage.total, usage.free))
    return mounts


def writable_by(path: Path, user: str | None) -> bool:
    """Whether `user` (the server's; None for this one) can create files in the store: its
    folder and, where they exist, `blobs/` and `manifests/` (a pull writes into both)."""
    folders = [path, *(sub for sub in (path / "blobs", path / "manifests") if is_dir(sub))]
    try:
        return all(_folder_writable_by(folder, user) for folder in folders)
    except OSError:
        return False


def _folder_writable_by(path: Path, user: str | None) -> bool:
    if user is None or sys_user() == user:
        return os.access(path, os.W_OK | os.X_OK)
    try:
        import grp
        import pwd

        account = pwd.getpwnam(user)
        groups = {g.gr_gid for g in grp.getgrall() if user in g.gr_mem} | {account.pw_gid}
    except (ImportError, KeyError):
        return os.access(path, os.W_OK | os.X_OK)  # no such user here: judge as this one
    stat = path.stat()
    if account.pw_uid == 0:
        return True
    if stat.st_uid == account.pw_uid:
        return stat.st_mode & 0o300 == 0o300
    if stat.st_gid in groups:
        return stat.st_mode & 0o030 == 0o030
    return stat.st_mode & 0o003 == 0o003


def sys_user() -> str | None:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return os.environ.get("USER") or os.environ.get("USERNAME")


def _same(a: Path, b: Path) -> bool:
    return _resolved(a) == _resolved(b)


def _resolved(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except OSError:
        return path
