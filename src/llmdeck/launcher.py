"""Starting `ollama serve` for the user, when no server answers, and stopping only what we started."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs
import psutil

from llmdeck.private_files import make_private_folders

STOP_WAIT_S = 5.0


class LaunchError(Exception):
    """`ollama serve` could not be started; the message says why and what to do."""


def find_ollama(environ: Mapping[str, str] | None = None) -> Path | None:
    """The `ollama` executable the user's shell would run, if any."""
    env = os.environ if environ is None else environ
    found = shutil.which("ollama", path=env.get("PATH", os.defpath))
    return Path(found) if found else None


def serve_log_path() -> Path:
    return platformdirs.user_state_path("llmdeck") / "ollama-serve.log"


def bind_address(host_url: str) -> str:
    """`OLLAMA_HOST` for a server that listens where llmdeck will look: host:port."""
    parts = urlsplit(host_url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 11434}"


def running_servers() -> list[int]:
    """Pids of `ollama serve` processes of any user (a server that does not answer is still one)."""
    pids = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = process.info.get("cmdline") or []
        # `ollama serve`, or an interpreter running an `ollama` script (a wrapper) with `serve`.
        for index in (0, 1):
            if command[index : index + 2] and Path(command[index]).name == "ollama":
                if command[index + 1 : index + 2] == ["serve"]:
                    pids.append(int(process.info["pid"]))
                break
    return pids


@dataclass
class ServeLauncher:
    """One `ollama serve` started by llmdeck: its process, its log, and the stop at exit."""

    executable: Path
    host_url: str
    models_dir: Path | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["OLLAMA_HOST"] = bind_address(self.host_url)
        if self.models_dir is not None:
            # The store llmdeck decided is the one the server should use (a service's store, say).
            env["OLLAMA_MODELS"] = str(self.models_dir)
        return env

    def start(self) -> int:
        """Start the server; returns its pid. Never a second one: a running server is an error."""
        if self.process is not None and self.process.poll() is None:
            raise LaunchError(f"ollama serve is already running (pid {self.process.pid}), started by llmdeck")
        others = running_servers()
        if others:
            raise LaunchError(
                f"an ollama serve is already running (pid {', '.join(map(str, others))}) but does not "
                f"answer at {self.host_url}: check its OLLAMA_HOST, or stop it first"
            )
        log_path = self.log_path or serve_log_path()
        try:
            make_private_folders(log_path.parent)
            # Readable by the user only: the log names models and paths.
            descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as error:
            raise LaunchError(f"cannot write the server log {log_path}: {error.strerror}") from error
        try:
            # An argument list, never a shell; its own session, so a ctrl+c in the terminal
            # reaches llmdeck only and llmdeck decides when the server stops.
            self.process = subprocess.Popen(
                [str(self.executable), "serve"],
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=descriptor,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise LaunchError(f"cannot start {self.executable}: {error.strerror}") from error
        finally:
            os.close(descriptor)
        self.log_path = log_path
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server llmdeck started (and only that one)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_WAIT_S)

    def log_tail(self, lines: int = 40) -> str:
        path = self.log_path or serve_log_path()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            return f"(no log at {path}: {error.strerror})"
        return "\n".join(text.splitlines()[-lines:])
