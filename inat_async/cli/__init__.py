"""The command line: a thin typer layer over the library (``inat-async``).

The only package that imports typer or rich (live display, tables, the demo). Each
command module registers its commands on :data:`~inat_async.cli.app.app` when imported.
"""

# Imported in the order of the help's command list (each import registers commands).
# isort: off
from .app import app, main
from .run import demo, run
from .species import species
from .status import status
from .datasets import export, verify
from .opendata import open_data_app

# isort: on

__all__ = [
    "app",
    "demo",
    "export",
    "main",
    "open_data_app",
    "run",
    "species",
    "status",
    "verify",
]
