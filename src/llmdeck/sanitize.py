"""Model output is untrusted text.

A reply may contain terminal control sequences (an OSC title change, an OSC 52 clipboard write);
passed through to the screen they would act on the user's terminal. Dropping every control
character but tab and newline makes any such sequence inert text. History keeps the original.
"""

from __future__ import annotations

_CONTROL = {code: None for code in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)}
_CONTROL.update({code: None for code in range(0x80, 0xA0)})  # C1 controls, e.g. the 8-bit CSI
_CONTROL[0x0D] = None  # a bare carriage return would overwrite the line in plain-text views


def inert(text: str) -> str:
    """`text` with terminal control characters removed (tab and newline kept)."""
    return text.translate(_CONTROL)
