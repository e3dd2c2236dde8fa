"""Running the installed `llmdeck` in a real pseudo-terminal, as a user's terminal would."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from types import TracebackType

COLUMNS, LINES = 120, 40
MARKER = b"qwen2.5:14b"  # the largest stand-in model, first row of the list
KEPT_OUTPUT = 1_000_000


def find_llmdeck() -> str:
    llmdeck = shutil.which("llmdeck", path=str(Path(sys.executable).parent)) or shutil.which("llmdeck")
    if llmdeck is None:
        raise SystemExit("llmdeck is not installed in this environment")
    compile_llmdeck()
    return llmdeck


def compile_llmdeck() -> None:
    """Write llmdeck's bytecode, as `pip install .` does: an editable install run with
    PYTHONDONTWRITEBYTECODE set compiles every module at each start (measured here: start-up
    1.6 s instead of 0.82 s, `llmdeck fit` 0.40 s instead of 0.27 s), which no user sees."""
    import compileall

    import llmdeck

    compileall.compile_dir(Path(llmdeck.__file__).parent, quiet=1)


class Terminal:
    """`command` in a 120x40 pty whose output is read all the time (an unread terminal blocks the
    app); on leaving, ctrl+q, then a kill if it does not quit."""

    def __init__(self, command: list[str], keep: int = KEPT_OUTPUT) -> None:
        self.command = command
        self.keep = keep
        self.written = 0  # bytes the app wrote to the terminal
        self.output = bytearray()  # the first `keep` of them, to look for text in
        # (time.monotonic(), bytes written so far) per read: when each byte reached the terminal.
        self.arrivals: list[tuple[float, int]] = []
        self._grew = threading.Condition()
        self._stop = threading.Event()

    def __enter__(self) -> Terminal:
        self._main, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command, stdin=child, stdout=child, stderr=child, env=env, close_fds=True
        )
        os.close(child)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        return self

    def _drain(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._main], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._main, 65536)
            except OSError:
                return
            with self._grew:
                self.written += len(chunk)
                self.arrivals.append((time.monotonic(), self.written))
                if len(self.output) < self.keep:
                    self.output.extend(chunk)
                self._grew.notify_all()

    def type(self, keys: bytes) -> None:
        """Keys as a user types them (b"\\r" is Enter)."""
        os.write(self._main, keys)

    def wait_for(self, text: bytes, timeout_s: float = 20.0) -> float:
        """Seconds from launch until `text` was on screen."""
        deadline = time.perf_counter() + timeout_s
        with self._grew:
            while text not in self.output:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise RuntimeError(f"{text!r} never appeared")
                self._grew.wait(left)
        return time.perf_counter() - self.started

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        os.write(self._main, b"\x11")  # ctrl+q
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._stop.set()
        self._reader.join()
        os.close(self._main)
