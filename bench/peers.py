"""The two peer methods of streaming Markdown in Textual, as baselines for bench/perf.py, and the
floor under any of them.

- oterm's: Textual's `Markdown.get_stream`, written once per token as chunks arrive;
- parllama's: the whole answer so far re-rendered with `Markdown.update`, at most 10 times a second;
- client: no UI at all, each token written to the terminal as it comes. What the official client
  costs alone is the least any app built on it can cost;
- textual: the same reading inside a Textual app (a worker, as llmdeck's), nothing drawn until
  the end: what Textual's event loop adds to the client (bench/parts.py);
- list: the floor under a start-up: a Textual app that asks the official client for the installed
  models and shows their names in a table, nothing else (bench/startup.py --floor).

Each is a minimal app (a status line and the answer, anchored to the bottom): no hardware pane, no
model list, so it is lighter than llmdeck by construction and the ratio is, if anything, kind to
it. It reads the reply through the official `ollama.AsyncClient`, as llmdeck does. Enter starts the
reply; the status line says "PEER-READY" first and "PEER-DONE" once the reply is drawn.

    python bench/peers.py --method oterm|parllama|client|textual --host URL [--model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import ollama
from textual import events, work
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Markdown, Static

PARLLAMA_INTERVAL_S = 0.1


class PeerApp(App[None]):
    CSS = """
    #status { height: 1; }
    VerticalScroll { height: 1fr; }
    """

    def __init__(self, method: str, host: str, model: str) -> None:
        super().__init__()
        self.method, self.host, self.model = method, host, model
        self.started = False

    def compose(self) -> ComposeResult:
        yield Static("PEER-READY", id="status")
        with VerticalScroll():
            yield Markdown(id="answer")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).anchor()

    def on_key(self, event: events.Key) -> None:
        if event.key == "enter" and not self.started:
            self.started = True
            self.query_one("#status", Static).update("streaming")
            self.stream_reply()

    @work(exclusive=True)
    async def stream_reply(self) -> None:
        client = ollama.AsyncClient(host=self.host)
        answer = self.query_one("#answer", Markdown)
        parts = await client.chat(model=self.model, messages=[{"role": "user", "content": "hi"}], stream=True)
        if self.method == "textual":
            read: list[str] = []
            async for part in parts:
                if part.message.content:
                    read.append(part.message.content)
            # The answer's last words, for the harness to see the end.
            last_words = " ".join("".join(read).split()[-8:])
            self.query_one("#status", Static).update(f"{last_words} · PEER-DONE")
            return
        if self.method == "oterm":
            stream = Markdown.get_stream(answer)
            async for part in parts:
                if part.message.content:
                    await stream.write(part.message.content)
            await stream.stop()
        else:
            received: list[str] = []
            shown = 0

            async def redraw() -> None:
                nonlocal shown
                if len(received) != shown:
                    shown = len(received)
                    await answer.update("".join(received))

            async def tick() -> None:
                while True:
                    await asyncio.sleep(PARLLAMA_INTERVAL_S)
                    await redraw()

            ticker = asyncio.create_task(tick())
            try:
                async for part in parts:
                    if part.message.content:
                        received.append(part.message.content)
            finally:
                ticker.cancel()
            await redraw()
        self.query_one("#status", Static).update("PEER-DONE")


class ListApp(App[None]):
    """The least a Textual app on the official client does to show the installed models."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    def compose(self) -> ComposeResult:
        yield DataTable(id="models")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_column("Model")
        self.list_models()

    @work(exclusive=True)
    async def list_models(self) -> None:
        listing = await ollama.AsyncClient(host=self.host).list()
        self.query_one(DataTable).add_rows([(entry.model,) for entry in listing.models])


async def client_only(host: str, model: str) -> None:
    """Tokens straight to the terminal, read as the apps read them."""
    print("PEER-READY", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    client = ollama.AsyncClient(host=host)
    parts = await client.chat(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
    async for part in parts:
        if part.message.content:
            sys.stdout.write(part.message.content)
            sys.stdout.flush()
    print("\nPEER-DONE", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # stays up until the harness closes it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("oterm", "parllama", "client", "textual", "list"), required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--model", default="llama3.1:8b")
    args = parser.parse_args()
    if args.method == "client":
        asyncio.run(client_only(args.host, args.model))
        return
    if args.method == "list":
        ListApp(args.host).run()
        return
    PeerApp(args.method, args.host, args.model).run()


if __name__ == "__main__":
    main()
