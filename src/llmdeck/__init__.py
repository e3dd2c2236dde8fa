"""llmdeck: which local model can my machine run, and how fast."""

__version__ = "0.1.0"
