"""The command line: a thin typer layer over the library (``inat-async``).

The only package that imports typer or rich (live display, tables, the demo).
"""

from .app import app, main
from .datasets import export, verify  # registers the export and verify commands on app
from .opendata import open_data_app  # registers the open-data sub-commands on app

__all__ = ["app", "export", "main", "open_data_app", "verify"]
