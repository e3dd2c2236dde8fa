"""The footer of keys, rebuilt only when what it shows changes, and patched in place when one
key comes or goes (Esc "Stop reply" with every reply)."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

# What the footer draws for one key: (binding, enabled, tooltip).
Shown = tuple[Binding, bool, str]


class KeyFooter(Footer):
    """Textual's footer, rebuilt only when the bindings it shows change.

    The footer rebuilds its dozen keys (each styled anew) after every change of bindings, though
    most leave what it shows as it was: the start brought three rebuilds in a row (the focus, the
    screen stack, the screen's resume), two of them of the keys already shown, each costing more
    than drawing the frame. What it builds comes from the screen's active bindings, read when the
    rebuild runs.

    A change that adds or removes one key is made in place: a rebuild took ~25 ms of the event
    loop (measured in a pty), twice per reply as Esc "Stop reply" came and went.
    """

    _recompose_pending = False
    _built_from: list[tuple[object, ...]] | None = None  # the active bindings the keys show
    _keys_shown: list[Shown] | None = None  # the keys drawn, in order, when known

    @staticmethod
    def _shown(screen: Screen[object]) -> list[tuple[object, ...]]:
        return [
            (key, binding, enabled, tooltip)
            for key, (_, binding, enabled, tooltip) in screen.active_bindings.items()
        ]

    @staticmethod
    def _keys(screen: Screen[object]) -> list[Shown] | None:
        """The keys `Footer.compose` draws (Textual 8): the first binding of each shown action, in
        order; None when some are grouped (drawn otherwise, so only rebuilt)."""
        by_action: dict[str, Shown] = {}
        for _, binding, enabled, tooltip in screen.active_bindings.values():
            if not binding.show:
                continue
            if binding.group is not None:
                return None
            by_action.setdefault(binding.action, (binding, enabled, tooltip))
        return list(by_action.values())

    def bindings_changed(self, screen: Screen[object]) -> None:
        if (
            screen is self.screen
            and self._bindings_ready
            and (self._recompose_pending or self._shown(screen) == self._built_from)
        ):
            return  # a rebuild to come reads the bindings then; or the keys show them already
        super().bindings_changed(screen)
        # The cases in which `Footer.bindings_changed` asks for a rebuild (Textual 8).
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._recompose_pending = True

    async def recompose(self) -> None:
        self._recompose_pending = False
        if not (self.is_attached and self._bindings_ready):
            self._keys_shown = None
            await super().recompose()
            return
        screen = self.screen
        self._built_from = self._shown(screen)
        keys = self._keys(screen)
        if keys is not None and self._keys_shown is not None and await self._patch(self._keys_shown, keys):
            self._keys_shown = keys
            return
        self._keys_shown = keys
        await super().recompose()

    async def _patch(self, before: list[Shown], after: list[Shown]) -> bool:
        """Add or remove the one key by which `after` differs from `before`; False if it differs
        otherwise (or the keys drawn are not those of `before`), for a rebuild."""
        drawn = [child for child in self.children if isinstance(child, FooterKey)]
        ours = [key for key in drawn if not key.has_class("-command-palette")]
        if [key.key for key in ours] != [binding.key for binding, _, _ in before]:
            return False
        if len(after) == len(before) + 1:
            at = _first_difference(after, before)
            if after[:at] + after[at + 1 :] != before:
                return False
            binding, enabled, tooltip = after[at]
            key = FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
            following = drawn[at] if at < len(drawn) else None
            await (self.mount(key, before=following) if following is not None else self.mount(key))
        elif len(after) == len(before) - 1:
            at = _first_difference(before, after)
            if before[:at] + before[at + 1 :] != after:
                return False
            await ours[at].remove()
        else:
            return False
        self.styles.grid_size_columns = len(after)
        return True


def _first_difference(longer: list[Shown], shorter: list[Shown]) -> int:
    for index, item in enumerate(shorter):
        if longer[index] != item:
            return index
    return len(shorter)
