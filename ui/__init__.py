"""Llama Desk's PySide6 interface: windows, widgets, Qt models and the workers that run `app` services."""
