"""Model management from the models pane: pull, remove, load ahead, details.

A mixin of the app, so the app module keeps to connecting and planning.
"""

from __future__ import annotations

from textual.app import App


class ModelManagement(App[None]):
    """Pull, remove, load and describe models; handlers for the models pane's requests."""
