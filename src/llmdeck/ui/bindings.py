"""Every key binding with an id, as the user's keymap has made it: what the help screen lists
and what a `[keymap]` table may name."""

from __future__ import annotations

from collections.abc import Iterable

from textual.binding import Binding
from textual.dom import DOMNode


def binding_rows(owners: Iterable[tuple[str, DOMNode]]) -> list[tuple[str, str, str, str]]:
    """(where, keys, what it does, id) for every binding with an id, keymap applied."""
    rows: list[tuple[str, str, str, str]] = []
    seen: set[str] = set()
    for where, node in owners:
        by_id: dict[str, list[Binding]] = {}
        current = node._bindings.copy()
        current.apply_keymap(node.app._keymap)  # Textual applies the keymap to a copy per key press
        for bindings in current.key_to_bindings.values():
            for binding in bindings:
                if binding.id:
                    by_id.setdefault(binding.id, []).append(binding)
        for binding_id, bindings in by_id.items():
            if binding_id in seen:
                continue
            seen.add(binding_id)
            keys = ", ".join(node.app.get_key_display(binding) for binding in bindings)
            rows.append((where, keys, bindings[0].description, binding_id))
    return rows
