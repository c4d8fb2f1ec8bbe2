"""Llama Desk core: everything that works without a display (no Qt imports here)."""

__version__ = "0.1.0"
