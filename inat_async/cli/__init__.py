"""The command line: a thin typer layer over the library, and the only package that
imports typer or rich (live display, tables, the demo)."""

from .app import app, main

__all__ = ["app", "main"]
