"""A loopback stand-in for an Ollama server, speaking its wire format exactly.

Built on pytest-httpserver (werkzeug), like ollama-python's own tests: the real `ollama.AsyncClient`
talks real HTTP to it. What it reproduces, from Ollama's `server/routes.go` and `docs/api.md`:
- `/api/chat` streams NDJSON (`application/x-ndjson`, chunked), one token per line, then a final
  line with `done: true`, `done_reason` and nanosecond durations measured while it streamed;
- errors before output are `{"error": "..."}` bodies with Ollama's status codes (404 for an unknown
  model); errors after output are an `{"error": "..."}` line in a 200 stream;
- `/api/version`, `/api/tags`, `/api/show`, `/api/ps` with Ollama's field names;
- `/api/pull` streams progress NDJSON (`pulling manifest`, per layer `pulling <digest[7:19]>` with
  `digest`, `total`, `completed`, then `verifying sha256 digest`, `writing manifest`, `success`);
  like Ollama, a model the registry does not have is a 200 stream whose last line is
  `{"error": "pull model manifest: file does not exist"}`, and the model is listed only once the
  pull succeeded;
- `/api/delete` removes a model (404 `model 'x' not found` for an unknown one).

Run it by hand for the TUI: `python tests/ollama_standin.py --port 11500 --token-delay 0.03`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from llmdeck.fit.catalog import load_catalog
from llmdeck.fit.quant import FILE_TYPE_IDS
from llmdeck.fit.synth import gguf_name, tensors

# Ollama's Go server sends each token at once (Go sets TCP_NODELAY on every connection); without
# this, Nagle's algorithm holds small NDJSON lines back for delayed ACKs and the stream stutters.
WSGIRequestHandler.disable_nagle_algorithm = True

NS_PER_S = 1_000_000_000

DEFAULT_REPLY = """## Three facts about llamas

1. Llamas are **camelids**, related to alpacas and camels.
2. A llama can carry about a quarter of its body weight.
3. They hum when they are curious or worried.

```python
def greet(name: str) -> str:
    return f"Hello, {name}!"
```

| animal | weight |
| --- | --- |
| llama | 130 kg |
| alpaca | 60 kg |
"""


@dataclass(frozen=True)
class StandInModel:
    name: str
    size: int
    parameter_size: str
    quantization: str
    family: str
    digest: str
    # The catalog tag whose architecture this model has; /api/show describes its GGUF from it.
    catalog: str | None = None
    # What /api/show adds about the model: its license text, its Modelfile's PARAMETER lines (as
    # Ollama prints them: name padded, then value) and what it can do.
    license: str = ""
    parameters: str = ""
    capabilities: tuple[str, ...] = ("completion",)
    # A vision projector in a blob of its own (llava's mmproj): a second FROM line in the modelfile.
    projector_digest: str = ""

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        }

    def model_info(self, verbose: bool) -> dict[str, Any]:
        if self.catalog is None:
            return {"general.architecture": self.family}
        entry, quant, _ = load_catalog().resolve(self.catalog)
        arch = entry.architecture
        prefix = arch.architecture
        info: dict[str, Any] = {
            "general.architecture": prefix,
            "general.file_type": FILE_TYPE_IDS[quant],
            "general.parameter_count": entry.parameters,
            "general.quantization_version": 2,
            f"{prefix}.block_count": arch.block_count,
            f"{prefix}.context_length": arch.context_length,
            f"{prefix}.embedding_length": arch.embedding_length,
            f"{prefix}.feed_forward_length": arch.feed_forward_length,
            f"{prefix}.attention.head_count": arch.head_count,
            f"{prefix}.attention.head_count_kv": arch.head_count_kv,
            # Ollama empties token arrays unless asked for them with `verbose`.
            "tokenizer.ggml.tokens": [f"t{i}" for i in range(arch.vocab_size)] if verbose else [],
        }
        for key, value in (
            ("attention.key_length", arch.key_length),
            ("attention.value_length", arch.value_length),
            ("attention.sliding_window", arch.sliding_window),
            ("expert_count", arch.expert_count),
            ("expert_used_count", arch.expert_used_count),
        ):
            if value:
                info[f"{prefix}.{key}"] = value
        return info

    def tensors(self) -> list[dict[str, Any]]:
        if self.catalog is None:
            return []
        entry, quant, _ = load_catalog().resolve(self.catalog)
        return [
            {"name": gguf_name(layer, tensor), "type": tensor.type_name, "shape": list(tensor.shape)}
            for layer, tensor in tensors(entry.architecture, quant, entry.embedding_type)
        ]


DEFAULT_MODELS: tuple[StandInModel, ...] = (
    StandInModel(
        "llama3.1:8b", 4_920_753_328, "8.0B", "Q4_K_M", "llama",
        "46e0c10c039e019119339687c3c1757cc81b9da49709a3b3924863ba87ca666e", catalog="llama3.1:8b",
    ),
    StandInModel(
        "qwen2.5:14b", 8_988_124_069, "14.8B", "Q4_K_M", "qwen2",
        "7cdf5a0187d5c58cc5d369b255592f7841d1c4696d45a8c8a9489440385b22f6", catalog="qwen2.5:14b",
    ),
    StandInModel(
        "llama3.2:3b", 2_019_393_189, "3.2B", "Q4_K_M", "llama",
        "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72", catalog="llama3.2:3b",
    ),
    StandInModel(
        "gemma2:2b-instruct-q8_0", 2_784_431_616, "2.6B", "Q8_0", "gemma2",
        "4a3c14db1a03fc2ad4dbc2bc1b9eacd1b12ddb8a1b3cb4b2d9e9a6f3ba3b0c51", catalog="gemma2:2b-instruct-q8_0",
    ),
)  # fmt: skip


def library_model(name: str, size: int | None = None) -> StandInModel | None:
    """The model a pull of `name` installs, when it is in llmdeck's catalog of library models."""
    try:
        entry, quant, _ = load_catalog().resolve(name)
    except LookupError:
        return None
    tag = name if ":" in name else f"{name}:latest"
    return StandInModel(
        tag,
        size if size is not None else entry.spec(quant).file_bytes,
        f"{entry.parameters / 1e9:.1f}B",
        quant,
        entry.architecture.architecture,
        hashlib.sha256(tag.encode()).hexdigest(),
        catalog=name,
    )


UNKNOWN_MODEL_ERROR = "pull model manifest: file does not exist"
DISK_FULL_ERROR = (
    "write /root/.ollama/models/blobs/sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa"
    "-partial-0: no space left on device"
)


@dataclass
class Pull:
    """What the next `/api/pull` does; the defaults pull a library model at once."""

    # The weights' bytes; None: the catalog's size for the model (or 1 GB outside the catalog).
    total_bytes: int | None = None
    # Progress lines for the weights' layer, and the pause before each.
    chunks: int = 10
    chunk_delay_s: float = 0.0
    # After this many lines of the 200 stream: an error line, as Ollama sends it mid-pull.
    error_after_lines: int | None = None
    error_message: str = DISK_FULL_ERROR
    # Before any output: an HTTP error with Ollama's JSON body (a plain 404, a 500).
    status: int = 200
    status_error: str = ""


@dataclass
class PullRecord:
    """What one pull stream did."""

    model: str
    lines_sent: int = 0
    completed_bytes: int = 0
    succeeded: bool = False
    finished: bool = False
    closed_by_client: bool = False
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Reply:
    """What the next `/api/chat` answers; the defaults are a healthy, instant reply."""

    text: str = DEFAULT_REPLY
    token_delay_s: float = 0.0
    # The first this many tokens go out at once, the rest `token_delay_s` apart (the end of a
    # long reply, paced, without waiting through its start).
    pace_after_tokens: int = 0
    load_delay_s: float = 0.0
    # Before any output: an HTTP error with Ollama's JSON body.
    status: int = 200
    status_error: str = ""
    # After some output: an error line inside the 200 stream, as Ollama sends it.
    error_after_tokens: int | None = None
    error_message: str = ""
    # Faults of a dying or broken server, after this many tokens:
    # the connection dropped mid-body (as when the server process dies),
    drop_after_tokens: int | None = None
    # no bytes for `stall_s` seconds (a hung runner), then the rest of the reply,
    stall_after_tokens: int | None = None
    stall_s: float = 0.0
    # a line that is not what Ollama sends (cut short, not JSON, not an object).
    garbage_after_tokens: int | None = None
    garbage: str = '{"model":"x","message":{"role":"assistant","content":"tru'


class ServerDied(Exception):
    """Raised inside a streaming body: werkzeug drops the connection without ending the body."""


def split_tokens(text: str) -> list[str]:
    """Token-sized pieces (a word with its trailing space, or a run of newlines)."""
    return re.findall(r"[^\s]+[ \t]*|\n+|[ \t]+", text)


@dataclass
class StreamRecord:
    """What one chat stream did, for tests to compare with what the app shows."""

    model: str
    sent_tokens: int = 0
    # time.monotonic() as each token left (comparable across processes on one machine).
    token_times: list[float] = field(default_factory=list)
    final: dict[str, Any] | None = None
    finished: bool = False
    closed_by_client: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class OllamaStandIn:
    def __init__(
        self,
        server: HTTPServer,
        *,
        version: str = "0.12.10",
        models: tuple[StandInModel, ...] = DEFAULT_MODELS,
    ) -> None:
        self.server = server
        self.version = version
        self.models = {model.name: model for model in models}
        # Where the server says its blobs are, in /api/show's modelfile (as a real server does).
        self.store_root = "/root/.ollama/models"
        self.replies: deque[Reply] = deque()
        self.default_reply = Reply()
        self.chat_requests: list[dict[str, Any]] = []
        # A GPU that holds only so many layers of a model: asking for more fails to load, with
        # the error Ollama reports when cudaMalloc fails (num_gpu -1 or absent means every layer).
        self.max_gpu_layers: dict[str, int] = {}
        self.streams: list[StreamRecord] = []
        self.ps_times: list[float] = []  # time.monotonic() of each /api/ps request
        self.show_requests: list[dict[str, Any]] = []
        # What a pull may install beyond the catalog's models, by name.
        self.library: dict[str, StandInModel] = {}
        self.pulls: deque[Pull] = deque()
        self.default_pull = Pull()
        self.pull_requests: list[dict[str, Any]] = []
        self.pull_records: list[PullRecord] = []
        self.delete_requests: list[dict[str, Any]] = []
        self.loaded: dict[str, datetime] = {}
        self._lock = threading.Lock()
        server.no_handler_status_code = 404
        server.expect_request("/api/version", method="GET").respond_with_handler(self._version)
        server.expect_request("/api/tags", method="GET").respond_with_handler(self._tags)
        server.expect_request("/api/show", method="POST").respond_with_handler(self._show)
        server.expect_request("/api/ps", method="GET").respond_with_handler(self._ps)
        server.expect_request("/api/chat", method="POST").respond_with_handler(self._chat)
        server.expect_request("/api/pull", method="POST").respond_with_handler(self._pull)
        server.expect_request("/api/delete", method="DELETE").respond_with_handler(self._delete)

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    # Endpoints

    @contextmanager
    def tags_held(self) -> Iterator[threading.Event]:
        """The next /api/tags waits until the event is set (a server slow to answer), at most 10 s."""
        answer = threading.Event()

        def held(request: Request) -> Response:
            answer.wait(10)
            return self._tags(request)

        self.server.expect_oneshot_request("/api/tags", method="GET").respond_with_handler(held)
        try:
            yield answer
        finally:
            answer.set()

    def _version(self, request: Request) -> Response:
        return _json({"version": self.version})

    def _tags(self, request: Request) -> Response:
        now = datetime.now(UTC)
        return _json(
            {
                "models": [
                    {
                        "name": model.name,
                        "model": model.name,
                        "modified_at": (now - timedelta(days=index + 1)).isoformat(),
                        "size": model.size,
                        "digest": model.digest,
                        "details": model.details(),
                    }
                    # A copy: a pull may add a model from the server's other thread meanwhile.
                    for index, model in enumerate(list(self.models.values()))
                ]
            }
        )

    def _show(self, request: Request) -> Response:
        body = _body(request) or {}
        self.show_requests.append(body)
        name = body.get("model") or body.get("name") or ""
        model = self.models.get(name)
        if model is None:
            return _error(404, f"model '{name}' not found")
        verbose = bool(body.get("verbose"))
        model_info, tensor_table = _encoded_facts(model, verbose)
        answer: dict[str, Any] = {
            "modelfile": '# Modelfile generated by "ollama show"\n'
            + f"FROM {self.store_root}/blobs/sha256-{model.digest}\n"
            + (
                f"FROM {self.store_root}/blobs/sha256-{model.projector_digest}\n"
                if model.projector_digest
                else ""
            ),
            "parameters": model.parameters,
            "template": "{{ .Prompt }}",
            "details": model.details(),
            "model_info": _MODEL_INFO,
            "capabilities": list(model.capabilities),
            "modified_at": datetime.now(UTC).isoformat(),
        }
        if model.license:
            answer["license"] = model.license  # omitempty in Ollama's ShowResponse
        if verbose:
            answer["tensors"] = _TENSORS
        # The two big fields are spliced in where their placeholders are, in Ollama's order.
        body = _dumps(answer).replace(_dumps(_MODEL_INFO), model_info, 1)
        body = body.replace(_dumps(_TENSORS), tensor_table, 1)
        return Response(body, content_type="application/json; charset=utf-8")

    def _ps(self, request: Request) -> Response:
        self.ps_times.append(time.monotonic())
        with self._lock:
            loaded = dict(self.loaded)
        entries = []
        for name, expires in loaded.items():
            model = self.models.get(name)
            if model is None:
                continue  # removed while loaded
            entries.append(
                {
                    "name": name,
                    "model": name,
                    "size": model.size,
                    # A GPU server: everything in VRAM, as `ollama ps` would show "100% GPU".
                    "size_vram": model.size,
                    "digest": model.digest,
                    "details": model.details(),
                    "expires_at": expires.isoformat(),
                    "context_length": 4096,
                }
            )
        return _json({"models": entries})

    def _chat(self, request: Request) -> Response:
        body = _body(request)
        if not isinstance(body, dict):
            return _error(400, "invalid request body")
        self.chat_requests.append(body)
        name = body.get("model", "")
        if name not in self.models:
            return _error(404, f"model '{name}' not found")
        limit = self.max_gpu_layers.get(name)
        requested = (body.get("options") or {}).get("num_gpu", -1)
        if limit is not None and (requested < 0 or requested > limit):
            return _error(500, "llama runner process has terminated: cudaMalloc failed: out of memory")
        if not body.get("messages"):
            # An empty chat loads the model, or with keep_alive 0 unloads it (Ollama's API docs).
            expires = keep_alive_expiry(body.get("keep_alive"))
            unload = expires is None
            with self._lock:
                if expires is None:
                    self.loaded.pop(name, None)
                else:
                    self.loaded[name] = expires
            message = {"role": "assistant", "content": ""}
            done = {"model": name, "created_at": _now(), "message": message, "done_reason": "unload" if unload
                    else "load", "done": True}  # fmt: skip
            return (
                _json(done)
                if body.get("stream") is False
                else Response(
                    json.dumps(done, separators=(",", ":")) + "\n", content_type="application/x-ndjson"
                )
            )
        reply = self.replies.popleft() if self.replies else self.default_reply
        if reply.status != 200:
            return _error(reply.status, reply.status_error)
        record = StreamRecord(model=name)
        self.streams.append(record)
        prompt_tokens = sum(len(split_tokens(str(m.get("content", "")))) for m in body.get("messages", []))
        return Response(
            self._stream(name, reply, record, prompt_tokens, body.get("keep_alive")),
            status=200,
            content_type="application/x-ndjson",
        )

    def _stream(
        self, name: str, reply: Reply, record: StreamRecord, prompt_tokens: int, keep_alive: Any = None
    ) -> Iterator[str]:
        started = time.perf_counter_ns()
        try:
            if reply.load_delay_s:
                time.sleep(reply.load_delay_s)
            loaded_at = time.perf_counter_ns()
            # Prompt evaluation: a plausible 2 ms per prompt token, really waited.
            time.sleep(prompt_tokens * 0.000_2)
            prompt_done = time.perf_counter_ns()
            with self._lock:
                expires = keep_alive_expiry(keep_alive)
                if expires is None:
                    self.loaded.pop(name, None)
                else:
                    self.loaded[name] = expires
            tokens = split_tokens(reply.text)
            first_token_at: int | None = None
            paced_from: float | None = None
            for index, token in enumerate(tokens):
                if reply.error_after_tokens is not None and index == reply.error_after_tokens:
                    yield json.dumps({"error": reply.error_message}, separators=(",", ":")) + "\n"
                    record.finished = True
                    return
                if index == reply.drop_after_tokens:
                    record.finished = True  # what the server did; the client did not hang up
                    raise ServerDied("the stand-in drops the connection mid-reply")
                if index == reply.garbage_after_tokens:
                    yield reply.garbage + "\n"
                if index == reply.stall_after_tokens:
                    time.sleep(reply.stall_s)
                if index > reply.pace_after_tokens and reply.token_delay_s:
                    # Each token waits until it is due, not a fixed time after the last: the
                    # rate holds however long a write took (a sleep of 0.2 ms overshoots by more).
                    now = time.monotonic()
                    if paced_from is None:
                        paced_from = now
                    due = paced_from + (index - reply.pace_after_tokens) * reply.token_delay_s
                    if due > now:
                        time.sleep(due - now)
                if first_token_at is None:
                    first_token_at = time.perf_counter_ns()
                yield _line(name, {"role": "assistant", "content": token}, done=False)
                record.token_times.append(time.monotonic())
                record.sent_tokens += 1
            finished = time.perf_counter_ns()
            final = {
                "model": name,
                "created_at": _now(),
                "message": {"role": "assistant", "content": ""},
                "done_reason": "stop",
                "done": True,
                "total_duration": finished - started,
                "load_duration": loaded_at - started,
                "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": prompt_done - loaded_at,
                "eval_count": len(tokens),
                # Ollama times decoding from the first generated token to the last.
                "eval_duration": finished - (first_token_at or prompt_done),
            }
            record.final = final
            yield json.dumps(final, separators=(",", ":")) + "\n"
            record.finished = True
        finally:
            # werkzeug closes this generator when a write fails because the client hung up.
            if not record.finished:
                record.closed_by_client = True
            record.done.set()

    def _pull(self, request: Request) -> Response:
        body = _body(request)
        if not isinstance(body, dict):
            return _error(400, "invalid request body")
        self.pull_requests.append(body)
        name = str(body.get("model") or body.get("name") or "")
        plan = self.pulls.popleft() if self.pulls else self.default_pull
        if plan.status != 200:
            return _error(plan.status, plan.status_error)
        if not name:
            return _error(400, "invalid model name")
        record = PullRecord(model=name)
        self.pull_records.append(record)
        model = self.library.get(name) or library_model(name, plan.total_bytes)
        if model is not None and plan.total_bytes is not None:
            model = replace(model, size=plan.total_bytes)
        return Response(self._pull_stream(name, model, plan, record), status=200,
                        content_type="application/x-ndjson")  # fmt: skip

    def _pull_stream(
        self, name: str, model: StandInModel | None, plan: Pull, record: PullRecord
    ) -> Iterator[str]:
        """Ollama's `PullModel` progress: the manifest, each layer, the checks, success."""

        def send(payload: dict[str, Any]) -> str:
            record.lines_sent += 1
            return json.dumps(payload, separators=(",", ":")) + "\n"

        try:
            lines = self._pull_lines(model, plan)
            for index, payload in enumerate(lines):
                if plan.error_after_lines is not None and index == plan.error_after_lines:
                    yield send({"error": plan.error_message})
                    record.finished = True
                    return
                if payload.get("status") == "success" and model is not None:
                    # The manifest is written: from now on the server lists the model, never before.
                    self.models[model.name] = model
                    record.succeeded = True
                if payload.get("completed") is not None and plan.chunk_delay_s and index:
                    time.sleep(plan.chunk_delay_s)
                yield send(payload)
                record.completed_bytes = int(payload.get("completed") or record.completed_bytes)
            record.finished = True
        finally:
            if not record.finished:
                record.closed_by_client = True
            record.done.set()

    def _pull_lines(self, model: StandInModel | None, plan: Pull) -> Iterator[dict[str, Any]]:
        yield {"status": "pulling manifest"}
        if model is None:
            yield {"error": UNKNOWN_MODEL_ERROR}
            return
        weights = model.size - sum(PULL_SMALL_LAYERS)
        for index, size in enumerate((weights, *PULL_SMALL_LAYERS)):
            digest = "sha256:" + hashlib.sha256(f"{model.name}/{index}".encode()).hexdigest()
            status = f"pulling {digest[7:19]}"
            # Ollama's first line for a layer has its total but no completed bytes yet.
            yield {"status": status, "digest": digest, "total": size}
            chunks = plan.chunks if index == 0 else 1
            for chunk in range(1, chunks + 1):
                yield {"status": status, "digest": digest, "total": size, "completed": size * chunk // chunks}
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        yield {"status": "success"}

    def _delete(self, request: Request) -> Response:
        body = _body(request)
        if not isinstance(body, dict):
            return _error(400, "invalid request body")
        self.delete_requests.append(body)
        name = str(body.get("model") or body.get("name") or "")
        if self.models.pop(name, None) is None:
            return _error(404, f"model '{name}' not found")
        with self._lock:
            self.loaded.pop(name, None)
        return Response("null", status=200, content_type="application/json; charset=utf-8")


# The template, license, params and config layers that follow the weights in a library manifest.
PULL_SMALL_LAYERS = (1_429, 12_320, 110, 487)

_GO_DURATION_PART = re.compile(r"([\d.]+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def keep_alive_expiry(keep_alive: Any, now: datetime | None = None) -> datetime | None:
    """When Ollama unloads a model after a request with this `keep_alive`; None: right away.

    As Ollama's `api.Duration`: absent is 5 minutes, a number is seconds, a string a Go duration,
    and anything negative is for ever (shown by `ollama ps` as "Forever").
    """
    now = now or datetime.now(UTC)
    if keep_alive is None:
        seconds = 300.0
    elif isinstance(keep_alive, int | float):
        seconds = float(keep_alive)
    else:
        text = str(keep_alive).strip()
        sign = -1.0 if text.startswith("-") else 1.0
        parts = _GO_DURATION_PART.findall(text.lstrip("+-"))
        seconds = sign * sum(float(number) * _GO_UNITS_S[unit] for number, unit in parts)
    if seconds < 0:
        return now + timedelta(days=365 * 290)
    if seconds == 0:
        return None
    return now + timedelta(seconds=seconds)


def _body(request: Request) -> Any:
    # Ollama reads the body as JSON whatever the Content-Type says.
    try:
        return json.loads(request.get_data() or b"null")
    except ValueError:
        return None


def _line(model: str, message: dict[str, str], *, done: bool) -> str:
    payload = {"model": model, "created_at": _now(), "message": message, "done": done}
    return json.dumps(payload, separators=(",", ":")) + "\n"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


_MODEL_INFO = "\0model_info\0"  # placeholders no model's text contains
_TENSORS = "\0tensors\0"


@functools.cache
def _encoded_facts(model: StandInModel, verbose: bool) -> tuple[str, str]:
    """A model's `/api/show` `model_info` and `tensors`, built and encoded once per process: with
    its vocabulary of 150,000 tokens that took a tenth of a second a model, at every app start."""
    return _dumps(model.model_info(verbose)), _dumps(model.tensors() if verbose else [])


def _dumps(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"))


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    body = _dumps(payload)
    return Response(body, status=status, content_type="application/json; charset=utf-8")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


class _QuickStopServer(HTTPServer):
    """Stops within 20 ms: werkzeug polls for shutdown every half second by default, a wait every
    test that stops a stand-in paid."""

    def thread_target(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.02)


def start_standin(port: int = 0, **kwargs: Any) -> OllamaStandIn:
    server = _QuickStopServer(host="127.0.0.1", port=port, threaded=True)
    standin = OllamaStandIn(server, **kwargs)
    server.start()
    return standin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=11500)
    parser.add_argument("--token-delay", type=float, default=0.03, help="seconds between tokens")
    parser.add_argument("--load-delay", type=float, default=0.3, help="seconds before the first token")
    parser.add_argument("--pull-delay", type=float, default=0.2, help="seconds between pull progress lines")
    parser.add_argument("--reply-file", type=Path, help="answer every prompt with this file's text")
    args = parser.parse_args()
    standin = start_standin(args.port)
    text = args.reply_file.read_text(encoding="utf-8") if args.reply_file else DEFAULT_REPLY
    standin.default_reply = Reply(text=text, token_delay_s=args.token_delay, load_delay_s=args.load_delay)
    standin.default_pull = Pull(chunks=50, chunk_delay_s=args.pull_delay)
    print(f"Ollama stand-in on {standin.url} (ctrl+c stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.server.stop()


if __name__ == "__main__":
    main()
