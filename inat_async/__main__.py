"""``python -m inat_async``: the same command line as ``inat-async``."""

from .cli import main

if __name__ == "__main__":
    main()
