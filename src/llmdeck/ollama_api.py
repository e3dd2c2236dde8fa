"""The only module that talks to Ollama.

Everything goes through the official `ollama.AsyncClient` on the native `/api/*` endpoints (the
OpenAI-compatible `/v1` ignores `num_ctx`). Client, HTTP and transport failures are mapped to the
small set of `OllamaError`s below, each carrying a message fit to show a user.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import threading
from collections.abc import AsyncGenerator, Awaitable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from llmdeck.sanitize import inert


def _import_ollama() -> Any:
    """The `ollama` package builds a default client from `OLLAMA_HOST` when imported, and raises
    on a value it cannot read (a bad port) even when llmdeck was given `--host`. llmdeck never
    uses that client: import the package with the variable hidden, then put it back."""
    try:
        import ollama as package
    except ValueError:
        saved = os.environ.pop("OLLAMA_HOST", None)
        try:
            import ollama as package
        finally:
            if saved is not None:
                os.environ["OLLAMA_HOST"] = saved
    return package


if TYPE_CHECKING:
    import httpx
    import ollama
    import pydantic
else:
    # Loaded by load_client_libraries() when a service is first used, not at start-up: they are
    # half of what Python imports before the first screen (measured: 0.25 of 0.58 s here).
    httpx = ollama = pydantic = None


# One import at a time: two first uses at once (the connect watch and a dialog) would import the
# same packages in two threads, and `_import_ollama` hides an environment variable meanwhile.
_loading = threading.Lock()


def load_client_libraries() -> None:
    """Import the official client and what it is built on (idempotent; blocking, ~0.25 s)."""
    global httpx, ollama, pydantic
    with _loading:
        if ollama is not None:
            return
        import httpx as http_library
        import pydantic as validation_library

        httpx, pydantic = http_library, validation_library
        ollama = _import_ollama()


# Listing models or asking the version answers in milliseconds; waiting longer means trouble.
QUERY_TIMEOUT_S = 15.0


class OllamaError(Exception):
    """Base of every failure this module reports; `str()` is a user-facing sentence."""


class OllamaUnreachable(OllamaError):
    def __init__(self, host: str, detail: str = "") -> None:
        self.host = host
        self.detail = detail
        super().__init__(f"cannot reach Ollama at {host}" + (f" ({detail})" if detail else ""))


class ModelNotFound(OllamaError):
    def __init__(self, model: str, server_message: str, *, pulling: bool = False) -> None:
        self.model = model
        self.server_message = server_message = inert(server_message)
        # A pull asks the registry, not the server's own store: "not installed" would be wrong then.
        where = "is not in the registry" if pulling else "is not installed on this server"
        super().__init__(f"model {model!r} {where}: {server_message}")


class OllamaResponseError(OllamaError):
    """Ollama answered with an error; `message` is Ollama's own words."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        # Ollama's words are shown to the user; a hostile server must not reach their terminal.
        self.message = message = inert(message)
        where = f"HTTP {status_code}" if status_code > 0 else "during the reply"
        super().__init__(f"Ollama error ({where}): {message}")


class ClientUnavailable(OllamaError):
    """The official client could not be loaded or built here: no request was sent."""


class StreamInterrupted(OllamaError):
    """The reply stopped before Ollama said it was done (connection lost, garbled data)."""


@dataclass(frozen=True, slots=True)
class InstalledModel:
    name: str
    size_bytes: int
    parameter_size: str
    quantization: str
    family: str
    digest: str


@dataclass(frozen=True, slots=True)
class GenerationStats:
    """Ollama's own figures from the final chunk; durations in nanoseconds, as on the wire."""

    done_reason: str | None
    eval_count: int | None
    eval_duration_ns: int | None
    prompt_eval_count: int | None
    prompt_eval_duration_ns: int | None
    load_duration_ns: int | None
    total_duration_ns: int | None


@dataclass(frozen=True, slots=True)
class RunningModel:
    """A model Ollama has loaded (`/api/ps`): the server's own account of it."""

    name: str
    size: int
    size_vram: int
    context_length: int | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class PullProgress:
    """One line of `/api/pull`'s progress: a status, and for a layer its digest and byte counts."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None  # absent on a layer's first line


PULL_SUCCESS = "success"


@dataclass(frozen=True, slots=True)
class ChatChunk:
    content: str
    thinking: str = ""
    stats: GenerationStats | None = None  # only on the final chunk


ChatMessage = Mapping[str, str]
T = TypeVar("T")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """What every httpx client builds for itself by default (the CA bundle of `SSL_CERT_FILE` or
    `SSL_CERT_DIR`, else certifi's), built once: reading a CA bundle takes tens of milliseconds.

    Importing `ollama` has built one already, for the default client it creates (`ollama._client`,
    with httpx's defaults, which llmdeck never uses): that one serves, when it can be found."""
    transport = getattr(getattr(ollama, "_client", None), "_client", None)
    pool = getattr(getattr(transport, "_transport", None), "_pool", None)
    built = getattr(pool, "_ssl_context", None)
    return built if isinstance(built, ssl.SSLContext) else httpx.create_ssl_context()


class OllamaService:
    """One Ollama server. Cheap to create; `aclose` releases its connections."""

    def __init__(self, host: str, *, connect_timeout_s: float = 3.0) -> None:
        self.host = host
        self._connect_timeout_s = connect_timeout_s
        self._clients: tuple[ollama.AsyncClient, httpx.AsyncClient] | None = None
        self._closed = False

    async def _connection(self) -> tuple[ollama.AsyncClient, httpx.AsyncClient]:
        """The official client, and httpx for the two calls it lacks; built on first use.

        The libraries are imported in a thread the first time: the screen keeps drawing meanwhile.
        """
        if self._closed:
            raise OllamaUnreachable(self.host, "llmdeck is closing")
        try:
            if ollama is None:
                await asyncio.to_thread(load_client_libraries)
            if self._clients is None:
                self._clients = self._build_clients()
        except Exception as error:
            # A broken install or TLS setting (SSL_CERT_FILE naming a missing file makes importing
            # ollama fail): every caller copes with an OllamaError, and this one says what it is.
            raise ClientUnavailable(
                f"cannot set up the Ollama client: {type(error).__name__}: {inert(_detail(error))}"
            ) from error
        if self._closed:  # closed while the libraries loaded: nothing may be left open
            await self._close_clients()
            raise OllamaUnreachable(self.host, "llmdeck is closing")
        return self._clients

    def _build_clients(self) -> tuple[ollama.AsyncClient, httpx.AsyncClient]:
        # Read timeout stays open: loading a large model before the first token can take minutes.
        connect = self._connect_timeout_s
        timeout = httpx.Timeout(connect=connect, read=None, write=30.0, pool=connect)
        from llmdeck.http_backend import plain_http_transport

        # The reply's stream: a read per token (see http_backend). The other client's answers
        # come whole, so it keeps httpx's defaults.
        tls = _tls_context()
        transport = plain_http_transport(self.host, tls)
        client = ollama.AsyncClient(host=self.host, timeout=timeout, verify=tls, transport=transport)
        # ollama-python has no call for /api/version nor a verbose /api/show; these go through
        # httpx directly, set up as ollama-python sets up its own client.
        headers = {"Accept": "application/json"}
        if api_key := os.environ.get("OLLAMA_API_KEY"):
            headers["Authorization"] = f"Bearer {api_key}"
        http = httpx.AsyncClient(
            base_url=self.host, timeout=timeout, follow_redirects=True, headers=headers, verify=tls
        )
        return client, http

    async def aclose(self) -> None:
        self._closed = True
        await self._close_clients()

    async def _close_clients(self) -> None:
        if self._clients is None:
            return
        (client, http), self._clients = self._clients, None
        await client.close()  # type: ignore[no-untyped-call]
        await http.aclose()

    async def version(self) -> str:
        _, http = await self._connection()

        async def fetch() -> str:
            response = await http.get("/api/version")
            response.raise_for_status()
            body = response.json()
            if not isinstance(body, dict) or not isinstance(body.get("version"), str):
                raise OllamaResponseError(-1, "the answer to /api/version has no version")
            return inert(body["version"])

        return await self._guard(fetch())

    async def list_models(self) -> list[InstalledModel]:
        client, _ = await self._connection()
        listing = await self._guard(client.list())
        return [_installed_model(entry) for entry in listing.models]

    async def running(self) -> list[RunningModel]:
        """The loaded models, from `/api/ps`."""
        client, _ = await self._connection()
        listing = await self._guard(client.ps())
        return [
            RunningModel(
                name=entry.model or entry.name or "",
                size=int(entry.size or 0),
                size_vram=int(entry.size_vram or 0),
                context_length=entry.context_length,
                expires_at=entry.expires_at,
            )
            for entry in listing.models
        ]

    async def unload(self, model: str) -> None:
        """Ask Ollama to unload a model now (an empty chat with `keep_alive: 0`)."""
        client, _ = await self._connection()
        await self._guard(client.chat(model=model, messages=[], keep_alive=0))

    async def load(
        self,
        model: str,
        options: Mapping[str, Any] | None = None,
        keep_alive: float | str | None = None,
    ) -> GenerationStats | None:
        """Load a model ahead of the first prompt (an empty chat), so the first reply is fast.

        The options must be the ones the chat will send: Ollama reloads a model whose memory
        options differ. Returns Ollama's figures when it sends any (it usually sends none for a
        load, only `done_reason: "load"`).
        """
        client, _ = await self._connection()
        call = client.chat(
            model=model,
            messages=[],
            options=dict(options) if options else None,
            keep_alive=keep_alive,
        )
        # No query timeout: loading a large model from a slow disk takes minutes.
        response = await self._guard(call, model=model, timeout_s=None)
        stats = _chunk(response).stats
        if stats is None:
            return None
        figures = (stats.load_duration_ns, stats.total_duration_ns, stats.eval_count, stats.prompt_eval_count)
        return stats if any(figure is not None for figure in figures) else None

    async def delete(self, model: str) -> None:
        """Remove a model from the server's store (`/api/delete`); Ollama drops unshared blobs."""
        client, _ = await self._connection()
        await self._guard(client.delete(model), model=model)

    async def pull(self, model: str) -> AsyncGenerator[PullProgress, None]:
        """Pull a model from its registry, one progress line at a time.

        Closing the iterator (or cancelling its task) closes the HTTP stream, which cancels the
        download in Ollama. A stream that ends without Ollama's "success" is an error: the model
        is not usable then, whatever the lines before said.
        """
        try:
            client, _ = await self._connection()
            stream = await client.pull(model, stream=True)
            succeeded = False
            async with aclosing(cast(AsyncGenerator[ollama.ProgressResponse, None], stream)) as parts:
                async for part in parts:
                    progress = PullProgress(
                        status=inert(part.status or ""),
                        digest=part.digest,
                        total=part.total,
                        completed=part.completed,
                    )
                    succeeded = progress.status == PULL_SUCCESS
                    yield progress
            if not succeeded:
                raise StreamInterrupted("the pull ended before Ollama said it succeeded")
        except Exception as error:
            raise self._stream_error(error, model, "mid-pull", pulling=True) from None

    async def show(self, model: str, *, verbose: bool = True) -> dict[str, Any]:
        """`/api/show` with `verbose`, which adds the tensor table the planner needs.

        ollama-python's `show` has no `verbose` flag and drops `tensors`, so this one call goes
        through httpx directly, like `version`.
        """

        _, http = await self._connection()

        async def fetch() -> dict[str, Any]:
            response = await http.post("/api/show", json={"model": model, "verbose": verbose})
            if response.status_code == 404:
                raise ModelNotFound(model, _error_text(response))
            response.raise_for_status()
            # A verbose answer carries the whole vocabulary (megabytes of JSON): parse it in a
            # thread so the screen does not stall.
            body = await asyncio.to_thread(response.json)
            if not isinstance(body, dict):
                raise OllamaResponseError(-1, "unreadable answer to /api/show")
            return body

        return await self._guard(fetch())

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        options: Mapping[str, Any] | None = None,
        *,
        keep_alive: float | str | None = None,
    ) -> AsyncGenerator[ChatChunk, None]:
        """Stream a reply. Closing the iterator (or cancelling its task) closes the HTTP stream,
        which is how Ollama learns to stop generating.

        `keep_alive` None sends none, so the server's own `OLLAMA_KEEP_ALIVE` applies.
        """
        try:
            client, _ = await self._connection()
            stream = await client.chat(
                model=model,
                messages=[dict(message) for message in messages],
                stream=True,
                options=dict(options) if options else None,
                keep_alive=keep_alive,
            )
            # The client's stream is an async generator; aclosing makes its HTTP response close
            # promptly however this loop ends, not whenever the garbage collector gets to it.
            finished = False
            async with aclosing(cast(AsyncGenerator[ollama.ChatResponse, None], stream)) as parts:
                async for part in parts:
                    chunk = _chunk(part)
                    finished = chunk.stats is not None
                    yield chunk
            if not finished:
                raise StreamInterrupted("the reply ended before Ollama said it was done")
        except Exception as error:
            raise self._stream_error(error, model, "mid-reply") from None

    def _stream_error(self, error: Exception, model: str, when: str, *, pulling: bool = False) -> OllamaError:
        """What a failure while reading a stream means to the user."""
        if isinstance(error, OllamaError):
            return error
        if isinstance(error, ollama.ResponseError):
            return self._response_error(error, model, pulling=pulling)
        if isinstance(error, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
            return OllamaUnreachable(self.host, _detail(error))
        if isinstance(error, httpx.TransportError):
            return StreamInterrupted(f"the connection to Ollama broke {when} ({_detail(error)})")
        if isinstance(error, json.JSONDecodeError | pydantic.ValidationError):
            return StreamInterrupted(f"Ollama sent a reply llmdeck cannot read ({_detail(error)})")
        # Anything else a broken or hostile server provokes in the client (a JSON line that is
        # not an object, an error body that is not one either) is still a bad reply, not a crash.
        return StreamInterrupted(
            f"Ollama sent a reply llmdeck cannot read ({type(error).__name__}: {inert(_detail(error))})"
        )

    async def _guard(
        self, call: Awaitable[T], *, model: str | None = None, timeout_s: float | None = QUERY_TIMEOUT_S
    ) -> T:
        try:
            return await asyncio.wait_for(call, timeout_s)
        except ollama.ResponseError as error:
            raise self._response_error(error, model) from None
        except httpx.HTTPStatusError as error:
            raise OllamaResponseError(error.response.status_code, _error_text(error.response)) from None
        except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise OllamaUnreachable(self.host, _detail(error)) from None
        except (TimeoutError, httpx.TimeoutException):
            waited = f"no answer within {timeout_s:.0f} s" if timeout_s is not None else "timed out"
            raise OllamaUnreachable(self.host, waited) from None
        except httpx.TransportError as error:
            raise OllamaUnreachable(self.host, _detail(error)) from None
        except OllamaError:
            raise
        except Exception as error:
            # JSON of the wrong shape, bytes that are not UTF-8, ...: an unusable answer, not a crash.
            detail = f"{type(error).__name__}: {_detail(error)}"
            raise OllamaResponseError(-1, f"unreadable answer ({detail})") from None

    def _response_error(
        self, error: ollama.ResponseError, model: str | None, *, pulling: bool = False
    ) -> OllamaError:
        message = str(error.error)
        if error.status_code == 404 and model is not None:
            return ModelNotFound(model, message, pulling=pulling)
        return OllamaResponseError(error.status_code, message)


def _installed_model(entry: ollama.ListResponse.Model) -> InstalledModel:
    details = entry.details
    return InstalledModel(
        # The name stays byte for byte: it is how the server knows the model. Screens inert it.
        name=entry.model or "",
        size_bytes=int(entry.size or 0),
        parameter_size=inert((details.parameter_size if details else None) or ""),
        quantization=inert((details.quantization_level if details else None) or ""),
        family=inert((details.family if details else None) or ""),
        digest=entry.digest or "",
    )


def _chunk(part: ollama.ChatResponse) -> ChatChunk:
    message = part.message
    stats = None
    if part.done:
        stats = GenerationStats(
            done_reason=part.done_reason,
            eval_count=part.eval_count,
            eval_duration_ns=part.eval_duration,
            prompt_eval_count=part.prompt_eval_count,
            prompt_eval_duration_ns=part.prompt_eval_duration,
            load_duration_ns=part.load_duration,
            total_duration_ns=part.total_duration,
        )
    return ChatChunk(content=message.content or "", thinking=message.thinking or "", stats=stats)


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except (ValueError, AttributeError):
        return response.text


def _detail(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if text == "All connection attempts failed" or text.startswith("Failed to connect to Ollama"):
        # What httpx and ollama-python say when the port is closed; say it plainly.
        return "connection refused: nothing is listening there"
    return text
