"""An SVG snapshot pins the look of a Markdown reply as the chat draws it (heading, emphasis, a
numbered and a nested list, a code fence, a table, a quote). The reply alone: the whole screen
races its workers (plans, the model cursor), which the main-screen snapshots already pin."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll

from llmdeck.ui.chat_pane import AssistantTurn

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


class ReplyAlone(App[None]):
    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield AssistantTurn(REPLY)


def test_a_markdown_reply(snap_compare: Any) -> None:
    assert snap_compare(ReplyAlone(), terminal_size=(80, 40))
