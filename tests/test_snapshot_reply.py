"""An SVG snapshot pins the look of a Markdown reply in the chat pane (heading, emphasis, a
numbered and a nested list, a code fence, a table, a quote), restored from the history so no
measured figure varies from run to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import fast_settings, wait_until, widget_text
from ollama_standin import OllamaStandIn
from textual.pilot import Pilot
from textual.widgets import Input

from llmdeck.hardware import StaticProbe
from llmdeck.history import History
from llmdeck.ollama_api import OllamaService
from llmdeck.ui.app import create_app
from llmdeck.ui.chat_pane import AssistantTurn
from llmdeck.ui.hardware_pane import HardwarePane

REPLY = """## Loads a llama carries

A healthy adult carries about **a quarter** of its weight, *around 25 kg*, with `balanced` panniers.

1. Check the saddle.
2. Balance the panniers.
   - a nested note about shade;
   - another about the herd.

```python
def carried(weight_kg: float, distance_km: float) -> float:
    return weight_kg * distance_km
```

| llama | load (kg) | notes |
| --- | ---: | --- |
| Ayla | 21 | steady |
| Beni | 19 | hums when curious |

> A llama that hums is curious or worried.
"""


@pytest.fixture(autouse=True)
def fixed_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/nonexistent/llmdeck-home")  # the store panel names it


def test_chat_pane_with_a_markdown_reply(
    snap_compare: Any, standin: OllamaStandIn, recorded_probe: StaticProbe, tmp_path: Path
) -> None:
    history_file = tmp_path / "history.sqlite3"
    history = History(history_file)
    chat = history.create_chat("Llama loads", "llama3.1:8b")
    history.add_message(chat.id, "user", "How much can a llama carry?")
    history.add_message(chat.id, "assistant", REPLY)
    history.close()
    app = create_app(
        OllamaService(standin.url), recorded_probe, fast_settings(standin.url), history_file=history_file
    )

    async def ready(pilot: Pilot[Any]) -> None:
        pilot.app.query_one("#prompt", Input).cursor_blink = False
        await wait_until(lambda: "RTX 4090" in widget_text(pilot.app.query_one(HardwarePane)))
        await wait_until(lambda: any(turn.source == REPLY for turn in pilot.app.query(AssistantTurn)))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 44), run_before=ready)
