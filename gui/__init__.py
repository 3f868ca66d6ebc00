"""Tunesmith's window (PySide6). It drives the engine through child processes and never loads a model itself."""
