"""Which models directory the Ollama server really uses, and how we know.

`OLLAMA_MODELS` only matters in the *server's* environment. The evidence, strongest first: the
blob paths the server itself reports (`/api/show`'s `FROM` lines), the running server process's
environment, the systemd unit's `Environment=`, then llmdeck's own environment, then the
platform's default for the user the server runs as.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICE_HOME = Path("/usr/share/ollama")  # the Linux installer's `ollama` system user
DOCKER_STORE = Path("/root/.ollama/models")
SYSTEMD_UNITS = (
    Path("/etc/systemd/system/ollama.service"),
    Path("/etc/systemd/system/ollama.service.d"),
    Path("/lib/systemd/system/ollama.service"),
    Path("/usr/lib/systemd/system/ollama.service"),
)


@dataclass(frozen=True, slots=True)
class ServerProcess:
    pid: int
    user: str | None
    # None when the OS does not let us read it (another user's process).
    environ: Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class SystemdUnit:
    path: Path
    environment: Mapping[str, str]
    user: str | None


@dataclass(frozen=True, slots=True)
class Surroundings:
    """Everything the decision looks at; `observe()` reads it from this machine."""

    environ: Mapping[str, str]
    home: Path
    platform: str
    server_processes: Sequence[ServerProcess] = ()
    systemd_units: Sequence[SystemdUnit] = ()
    served_blob_paths: Sequence[Path] = ()
    service_home: Path = SERVICE_HOME


@dataclass(frozen=True, slots=True)
class StoreDecision:
    path: Path
    source: str  # "server", "server-process", "systemd", "environment", "default"
    how: str  # one sentence: how llmdeck knows
    server_user: str | None
    candidates: tuple[Path, ...]
    evidence: tuple[str, ...] = field(default=())


def default_store(home: Path) -> Path:
    return home / ".ollama" / "models"


def locate(where: Surroundings) -> StoreDecision:
    evidence: list[str] = []
    client_env = where.environ.get("OLLAMA_MODELS", "").strip()
    if client_env:
        evidence.append(f"OLLAMA_MODELS={client_env} in llmdeck's environment")
    server_user = next((p.user for p in where.server_processes if p.user), None)
    unit_user = next((u.user for u in where.systemd_units if u.user), None)

    decided: tuple[Path, str, str] | None = None
    stores_from_blobs = {path.parent.parent for path in where.served_blob_paths}
    if stores_from_blobs:
        path = sorted(stores_from_blobs)[0]
        evidence.append(f"the server loads its models from {path} (FROM lines of /api/show)")
        decided = (path, "server", "the server reports its blob paths there")
    for process in where.server_processes:
        if process.environ is None:
            evidence.append(
                f"the ollama process (pid {process.pid}, user {process.user}): environment not readable"
            )
            continue
        value = process.environ.get("OLLAMA_MODELS", "").strip()
        process_home = process.environ.get("HOME")
        if value:
            evidence.append(f"OLLAMA_MODELS={value} in the ollama process's environment (pid {process.pid})")
            decided = decided or (
                Path(value),
                "server-process",
                f"the running server (pid {process.pid}) has OLLAMA_MODELS set",
            )
        elif process_home:
            evidence.append(
                f"the ollama process (pid {process.pid}) has no OLLAMA_MODELS; HOME is {process_home}"
            )
            decided = decided or (
                default_store(Path(process_home)),
                "server-process",
                f"the running server (pid {process.pid}) uses the default under its HOME",
            )
    for unit in where.systemd_units:
        value = unit.environment.get("OLLAMA_MODELS", "").strip()
        if value:
            evidence.append(f"Environment=OLLAMA_MODELS={value} in {unit.path}")
            decided = decided or (Path(value), "systemd", f"the systemd unit {unit.path} sets OLLAMA_MODELS")
    if decided is None and (unit_user == "ollama" or server_user == "ollama"):
        decided = (
            default_store(where.service_home),
            "systemd" if unit_user == "ollama" else "server-process",
            "the server runs as user ollama, whose default store this is",
        )
    if decided is None and server_user and (home := _home_of(server_user)) is not None:
        # A running server of another user keeps that user's default, whatever llmdeck's own
        # environment says.
        decided = (
            default_store(home),
            "server-process",
            f"the server runs as {server_user}; its default store",
        )
    if decided is None and client_env:
        decided = (Path(client_env), "environment", "OLLAMA_MODELS is set for llmdeck (no server evidence)")
    if decided is None:
        decided = (
            default_store(where.home),
            "default",
            f"Ollama's default for {_platform_name(where.platform)}",
        )
    path, source, how = decided

    candidates = [path]
    for extra in (
        Path(client_env) if client_env else None,
        default_store(where.home),
        default_store(where.service_home) if where.platform.startswith("linux") else None,
        DOCKER_STORE if where.platform.startswith("linux") else None,
        *stores_from_blobs,
    ):
        if extra is not None and extra not in candidates:
            candidates.append(extra)
    return StoreDecision(
        path=path,
        source=source,
        how=how,
        server_user=server_user or unit_user,
        candidates=tuple(candidates),
        evidence=tuple(evidence),
    )


def _platform_name(platform: str) -> str:
    if platform.startswith("win"):
        return "Windows (%USERPROFILE%\\.ollama\\models)"
    if platform == "darwin":
        return "macOS (~/.ollama/models)"
    return "a server started by this user (~/.ollama/models)"


def _home_of(user: str) -> Path | None:
    try:
        import pwd

        return Path(pwd.getpwnam(user).pw_dir)
    except (ImportError, KeyError):
        return None


def parse_systemd_unit(path: Path, text: str, base: SystemdUnit | None = None) -> SystemdUnit:
    """A unit file or drop-in, applied over `base` as systemd does: later settings win, and an
    empty `Environment=` clears what came before."""
    environment: dict[str, str] = dict(base.environment) if base else {}
    user = base.user if base else None
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith(("#", ";")):
            continue
        if key.strip() == "Environment":
            if not value.strip():
                environment.clear()
                continue
            try:
                assignments = shlex.split(value)
            except ValueError:
                continue
            for assignment in assignments:
                name, has_value, setting = assignment.partition("=")
                if has_value:
                    environment[name] = setting
        elif key.strip() == "User":
            user = value.strip()
    return SystemdUnit(path, environment, user)


def observe(served_blob_paths: Sequence[Path] = ()) -> Surroundings:
    """This machine as it is: environment, ollama processes, the systemd unit."""
    return Surroundings(
        environ=dict(os.environ),
        home=Path.home(),
        platform=sys.platform,
        server_processes=tuple(_ollama_processes()),
        systemd_units=tuple(_systemd_units()),
        served_blob_paths=tuple(served_blob_paths),
    )


def _ollama_processes() -> list[ServerProcess]:
    import psutil

    def read(process: psutil.Process, attribute: str) -> Any:
        # As `process_iter(attrs)` reads an attribute: None when denied or for a zombie.
        try:
            return getattr(process, attribute)()
        except (psutil.AccessDenied, psutil.ZombieProcess):
            return None

    found = []
    # Only the name of every process (one read each); the rest only of those named ollama.
    for process in psutil.process_iter(["name"]):
        if process.info.get("name") != "ollama":
            continue
        try:
            cmdline = read(process, "cmdline") or []
            if "serve" not in cmdline:
                continue
            username = read(process, "username")
        except psutil.NoSuchProcess:
            continue  # gone meanwhile, as `process_iter` skips it
        try:
            environ: Mapping[str, str] | None = process.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            environ = None
        found.append(ServerProcess(process.pid, username, environ))
    return found


def _systemd_units() -> list[SystemdUnit]:
    """The ollama unit with its drop-ins merged in systemd's order (unit file, then drop-ins)."""
    unit_files = [p for p in SYSTEMD_UNITS if p.suffix == ".service"]
    drop_ins = [p for p in SYSTEMD_UNITS if p.suffix == ".d"]
    merged: SystemdUnit | None = None
    for path in [next((u for u in unit_files if _readable(u)), None), *_conf_files(drop_ins)]:
        if path is None:
            continue
        try:
            merged = parse_systemd_unit(path, path.read_text(encoding="utf-8", errors="replace"), merged)
        except OSError:
            continue
    return [merged] if merged else []


def _readable(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _conf_files(folders: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        try:
            files += sorted(folder.glob("*.conf"))
        except OSError:
            continue
    return files


def blob_paths_from_modelfile(modelfile: str) -> list[Path]:
    """The absolute blob paths in a modelfile's FROM and ADAPTER lines."""
    paths = []
    for line in modelfile.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        candidate = rest.strip()
        if (
            keyword.upper() in ("FROM", "ADAPTER")
            and "sha256-" in candidate
            and (candidate.startswith("/") or (len(candidate) > 2 and candidate[1] == ":"))
        ):
            paths.append(Path(candidate))
    return paths
