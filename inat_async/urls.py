"""URL hygiene shared by the API client and the photo fetcher: checks, redaction, redirects.

- :func:`check_api_url` refuses a base URL that cannot work (a bad host, a fragment)
  before anything is created, and splits off its query string so that it is carried
  over to every request instead of being glued before the path.
- :func:`redact` hides ``user:password@`` in any text shown to the user.
- :func:`redirect_failure` names a redirect that no retry can fix (to ``file://``,
  ``ftp://``, a broken URL, or an endless chain), so it fails at once.
- :func:`photo_session` is a caller's session as photo hosts see it: its connector and
  plain headers, none of its credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from yarl import URL

from .errors import UsageError, redact

__all__ = [
    "MAX_REDIRECTS",
    "REDIRECT_ERRORS",
    "ApiBase",
    "check_api_url",
    "photo_session",
    "redact",
    "redirect_failure",
]

#: Hops followed before a redirect chain is called endless (aiohttp's default too).
MAX_REDIRECTS = 10


@dataclass(frozen=True, slots=True)
class ApiBase:
    """A checked API base URL: where paths are appended, and the query carried over."""

    #: Scheme, credentials, host, port and path; no query, no trailing slash.
    base: str
    #: The base URL's own query parameters, sent with every request.
    params: tuple[tuple[str, str], ...] = ()
    #: The host the API lives on: only it may receive the caller's credentials.
    host: str = ""


def check_api_url(url: str) -> ApiBase:
    """The base URL split for use, or a :class:`UsageError` naming what is wrong.

    >>> check_api_url("https://mirror.example/v1?key=abc").params
    (('key', 'abc'),)
    """
    shown = redact(url)
    if not url.startswith(("http://", "https://")):
        raise _bad(f"api_url must start with http:// or https://, got {shown!r}")
    try:
        parsed = URL(url)
        port = parsed.port  # a port out of range raises here
        host = parsed.host
    except (ValueError, TypeError) as exc:
        raise _bad(f"api_url {shown!r} is not a valid URL: {redact(str(exc))}") from None
    if not host or any(ch.isspace() for ch in host):
        raise _bad(f"api_url {shown!r} names no valid host")
    if port is not None and not 0 < port < 65536:
        raise _bad(f"api_url {shown!r} has a port out of range")
    if parsed.fragment:
        raise _bad(f"api_url {shown!r} has a #fragment; leave it out")
    params = tuple((key, value) for key, value in parsed.query.items())
    base = str(parsed.with_query(None).with_fragment(None)).rstrip("/")
    return ApiBase(base, params, host)


def _bad(message: str) -> UsageError:
    return UsageError(message, options=("api_url",))


#: Redirect failures that another attempt cannot fix (the last two are in aiohttp >= 3.9.4).
REDIRECT_ERRORS: tuple[type[BaseException], ...] = tuple(
    error
    for name in (
        "TooManyRedirects",
        "NonHttpUrlRedirectClientError",
        "InvalidUrlRedirectClientError",
    )
    if isinstance(error := getattr(aiohttp, name, None), type)
)


def redirect_failure(exc: BaseException) -> str | None:
    """Why a redirect cannot be followed, or None when ``exc`` is not such a failure."""
    if isinstance(exc, aiohttp.TooManyRedirects):
        return f"the server redirected {MAX_REDIRECTS} times in a row (an endless chain)"
    if not isinstance(exc, REDIRECT_ERRORS):
        return None
    if type(exc).__name__.startswith("NonHttp"):
        return f"the server redirected to a URL that is not http(s): {_target(exc)}"
    return f"the server redirected to an invalid URL: {_target(exc)}"


def _target(exc: BaseException) -> str:
    url = getattr(exc, "url", None)
    text = str(url) if url is not None else str(exc)
    return redact(text[:200])


#: Headers of a caller's session that photo hosts are sent. Photos are public: the
#: caller's Authorization, Cookie or API-key headers (and its ``auth=``) are for the API.
PHOTO_HEADERS = frozenset(
    {"user-agent", "accept", "accept-encoding", "accept-language", "proxy-authorization"}
)


def photo_session(session: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """A session for photo hosts over ``session``'s connector, without its credentials.

    The photo hosts are other hosts than the API in production (a CDN, S3): a token in
    the caller's session headers must not travel there. The caller's trace configs do
    (its metrics or logs see every request). Close the returned session when done; the
    connector stays the caller's.
    """
    headers = {key: value for key, value in session.headers.items() if key.lower() in PHOTO_HEADERS}
    return aiohttp.ClientSession(
        connector=session.connector,
        connector_owner=False,
        headers=headers,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=session.timeout,
        trust_env=session.trust_env,
        trace_configs=list(session.trace_configs),
    )
