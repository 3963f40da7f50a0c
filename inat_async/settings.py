"""The run's configuration: validated :class:`Settings`, and the constants they default to.

Kept apart from the pipeline so that the dry run, the CLI and the API client can read
the configuration without importing the machinery that downloads.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from ._version import __version__
from .errors import UsageError
from .limits import Limits, LimitSettings, default_limits
from .options import ANY, Query, Size
from .retry import RetryPolicy
from .selection import Filters, Sampling
from .urls import check_api_url

#: The public iNaturalist API; limits above its published pace are refused against it.
OFFICIAL_API_URL = "https://api.inaturalist.org/v1"
#: Environment variable naming another API base (a mirror, a test server).
API_URL_ENV = "INAT_API_URL"
DEFAULT_USER_AGENT = (
    f"inat-async/{__version__} (+https://github.com/inat-async/inat-async; bulk photo downloader)"
)
#: Typical bytes of one photo per size: the first reservations before real sizes are known.
TYPICAL_BYTES = {"small": 20_000, "medium": 80_000, "large": 300_000, "original": 1_200_000}

# The defaults of a run, shared by Settings, download_species/download_all and the CLI.
DEFAULT_OBSERVATIONS = 200
DEFAULT_QUALITY = "research"
DEFAULT_LICENSE = ANY
DEFAULT_SIZE: Size = "medium"
DEFAULT_OUT_DIR = Path("results")
DEFAULT_WORKERS = 8


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs, validated. Build it with :meth:`create`."""

    query: Query
    observations: int = DEFAULT_OBSERVATIONS
    out_dir: Path = DEFAULT_OUT_DIR
    workers: int = DEFAULT_WORKERS
    api_url: str = OFFICIAL_API_URL
    user_agent: str = DEFAULT_USER_AGENT
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def create(
        cls,
        *,
        observations: int = DEFAULT_OBSERVATIONS,
        quality: str | Sequence[str] = DEFAULT_QUALITY,
        license: str | Sequence[str] = DEFAULT_LICENSE,
        size: str = DEFAULT_SIZE,
        out_dir: str | os.PathLike[str] = DEFAULT_OUT_DIR,
        workers: int = DEFAULT_WORKERS,
        api_url: str | None = None,
        user_agent: str | None = None,
        retry: RetryPolicy | None = None,
        filters: Filters | None = None,
        sampling: Sampling | None = None,
    ) -> Settings:
        _check_count("observations", observations)
        _check_count("workers", workers)
        api_url = api_url or os.environ.get(API_URL_ENV) or OFFICIAL_API_URL
        check_api_url(api_url)  # a URL that cannot work is refused before anything exists
        return cls(
            query=Query.parse(
                quality=quality, license=license, size=size, filters=filters, sampling=sampling
            ),
            observations=observations,
            out_dir=Path(out_dir),
            workers=workers,
            api_url=api_url,
            user_agent=user_agent or DEFAULT_USER_AGENT,
            retry=retry or RetryPolicy(),
        )


def _check_count(name: str, value: object) -> None:
    # Untyped callers (a config file, **kwargs) can pass "50" or True: say so, not TypeError.
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be a whole number, got {value!r}", options=(name,))
    if value < 1:
        raise UsageError(f"{name} must be at least 1, got {value}", options=(name,))


#: The options :meth:`Settings.create` takes; download_species/download_all mirror them.
SETTINGS_OPTIONS: frozenset[str] = frozenset(inspect.signature(Settings.create).parameters)

P = ParamSpec("P")
R = TypeVar("R")


def check_options(
    function: str, accepted: Mapping[str, object], given: Mapping[str, object]
) -> None:
    """Refuse unknown keywords and ``settings`` given together with its options.

    mypy catches both in typed code; this is the same contract at run time, for
    callers that build keyword arguments dynamically (a config file, ``**kwargs``).
    """
    unknown = [name for name in given if name not in accepted]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, [a for a in accepted if a not in given], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"{function}() has no option {name!r}{hint}")
    if given.get("settings") is not None:
        both = [name for name in given if name in SETTINGS_OPTIONS]
        if both:
            raise UsageError(
                f"{function}(): pass either settings or its options, not both: {', '.join(both)}"
            )


def settings_or_options(
    func: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Decorate a run function whose keywords are ``settings`` or the Settings options.

    Python would raise a bare :class:`TypeError` for an unknown keyword, and could not
    tell ``workers=8`` given from ``workers`` left at its default; this wrapper sees
    the keywords as passed and raises :class:`UsageError` for both mistakes.
    """
    accepted = inspect.signature(func).parameters

    @functools.wraps(func)
    async def checked(*args: P.args, **kwargs: P.kwargs) -> R:
        check_options(func.__name__, accepted, kwargs)
        return await func(*args, **kwargs)

    return checked


def resolve_limits(limits: Limits | LimitSettings | None, api_url: str) -> Limits:
    """The limits a run uses: a given instance, or the process-wide shared one."""
    if isinstance(limits, Limits):
        limits.settings.validate(api_url)
        return limits
    settings = limits or LimitSettings()
    settings.validate(api_url)
    return default_limits(settings)
