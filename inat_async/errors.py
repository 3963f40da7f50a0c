"""The one exception tree of inat-async.

Every error the library raises on purpose derives from :class:`InatError`, so an
embedding program can catch everything with one ``except`` and the CLI can turn
any of them into one clear line::

    InatError
    ├── UsageError            bad arguments or input, found before anything is downloaded
    │   ├── SpeciesFileError  an unreadable or malformed species.csv
    │   ├── OutputConflictError  the output folder holds a dataset made with other settings
    │   └── OpenDataError     the Open Data tables are missing, truncated or malformed
    ├── ApiError              the API answered with an error, or not at all, after retries
    │   ├── ResponseShapeError  the answer was not the JSON we expect (after retries)
    │   └── TaxonNotFoundError  no taxon has that name
    ├── StorageError          the output folder or the resume store cannot be written
    └── LimitsError           the shared limits store cannot be used

Failed photos are *data*, not exceptions: they are recorded with their reason and the
run goes on (see :class:`inat_async.events.PhotoFailed`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# scheme://user:password@ or scheme://token@, up to the host: what must never be shown.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]*@")


def redact(text: str) -> str:
    """``http://ann:secret@host/v1`` -> ``http://***@host/v1``, anywhere in ``text``."""
    return _USERINFO.sub(r"\1***@", text)


class InatError(Exception):
    """Base of every error raised on purpose by inat-async.

    ``context`` carries what the user needs to act (species, observation id, URL);
    ``str(error)`` renders the message followed by that context on one line.
    ``options`` lists the settings the message names, spelled as the library spells
    them (``"workers"``, ``"hourly_bytes"``), so that a front end can put its own
    spelling in their place (the CLI writes ``--workers``, ``--hourly-limit``).
    """

    def __init__(
        self,
        message: str,
        *,
        options: Sequence[str] = (),
        context: Mapping[str, object] | None = None,
        **more: object,
    ) -> None:
        # Credentials in a URL (``user:password@``) are never shown, whatever the message.
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.options = tuple(options)
        merged = {**(context or {}), **more}
        self.context = {
            key: redact(value) if isinstance(value, str) else value
            for key, value in merged.items()
            if value is not None
        }

    def __str__(self) -> str:
        if not self.context:
            return self.message
        details = ", ".join(f"{key}={value}" for key, value in self.context.items())
        return f"{self.message} ({details})"


class UsageError(InatError):
    """Bad arguments or input: nothing was downloaded or created."""


class SpeciesFileError(UsageError):
    """The species list cannot be read or has the wrong shape."""


class ApiError(InatError):
    """The API answered with an error status, or could not be reached, after retries."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        options: Sequence[str] = (),
        context: Mapping[str, object] | None = None,
        **more: object,
    ) -> None:
        super().__init__(message, options=options, context=context, status=status, **more)
        self.status = status


class ResponseShapeError(ApiError):
    """The API answered, but not with the JSON shape we rely on."""


class TaxonNotFoundError(ApiError):
    """No active taxon has this name; ``suggestions`` lists close names the API offered."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"no iNaturalist taxon is named {name!r}{hint}")
        self.suggestions = suggestions


class OutputConflictError(UsageError):
    """The output folder already holds a dataset downloaded with other settings."""


class OpenDataError(UsageError):
    """The Open Data tables given cannot be used: the message names the file at fault."""


class StorageError(InatError):
    """A file or the resume store in the output folder cannot be written (e.g. disk full)."""


class LimitsError(InatError):
    """The shared limits store cannot be opened or written."""
