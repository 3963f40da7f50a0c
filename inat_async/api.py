"""The iNaturalist API client: paced, retried JSON requests, taxon resolution, id_above walks.

Every request, retries included, first takes a slot from the shared
:class:`~inat_async.limits.Limits`. A 429 makes the limits hold *everyone* back
(``Limits.backoff``) instead of this task sleeping on its own clock. Failures are
translated here, at the boundary, into :class:`~inat_async.errors.ApiError` with
the URL and status as context.

Against a hostile or broken server: a body is read in pieces and refused past
:data:`MAX_BODY_BYTES` once decompressed (a gzip bomb costs at most that much
memory), and a redirect to a non-http URL or an endless chain fails at once instead
of being retried.

Observation searches (:meth:`InatClient.observation_page`) are several MB a page, nearly
all of it unread: they are decoded straight to the fields read
(:func:`~inat_async.models.decode_observation_page`); any answer that decoding refuses
takes the general path (text in its charset, ``json.loads``), which decides as before.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import random
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import aiohttp

from .errors import ApiError, ResponseShapeError, TaxonNotFoundError
from .events import EventCallback, ignore, wait_reporter
from .limits import Limits, api_host
from .models import (
    ObservationPage,
    Taxon,
    decode_observation_page,
    is_result_page,
    parse_observation_page,
    parse_taxa_page,
)
from .options import Query
from .retry import RetryPolicy, parse_retry_after
from .settings import OFFICIAL_API_URL
from .urls import REDIRECT_ERRORS, check_api_url, redact, redirect_failure

#: The API's largest page; larger values are cut to it.
MAX_PER_PAGE = 200
#: Largest API answer read, once decompressed. A page of 200 real observations is a few
#: MB; past this the answer is refused, whatever its compressed size.
MAX_BODY_BYTES = 32 * 2**20
_READ_CHUNK = 64 * 1024

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TaxonMatch:
    taxon: Taxon
    #: The synonym or common name that matched, when it is not the taxon's own name.
    matched_term: str | None


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, message: str, *, bad_shape: bool = False) -> None:
        super().__init__(message)
        self.bad_shape = bad_shape


class InatClient:
    """A thin, polite client of the v1 API.

    >>> async with aiohttp.ClientSession() as session:  # doctest: +SKIP
    ...     client = InatClient(session, limits=default_limits())
    ...     match = await client.resolve_taxon("Apis mellifera")
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        limits: Limits,
        api_url: str = OFFICIAL_API_URL,
        retry: RetryPolicy | None = None,
        on_event: EventCallback = ignore,
        timeout: float = 60.0,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self._session = session
        self._limits = limits
        checked = check_api_url(api_url)
        self._base = checked.base
        #: A query string in the base URL (a mirror's key, say) goes with every request.
        self._base_params = dict(checked.params)
        self._max_body = max_body
        #: A 429 pauses the requests to this API alone (not a mirror's to another).
        self._host = api_host(api_url)
        self._retry = retry or RetryPolicy()
        self._on_wait = wait_reporter(on_event)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._rng = random.Random()

    async def get_json(
        self,
        path: str,
        params: Mapping[str, str | int],
        *,
        valid: Callable[[Any], bool] = lambda body: isinstance(body, dict),
        context: Mapping[str, object] | None = None,
    ) -> Any:
        """GET ``path`` and return its JSON body, retrying what retrying can fix."""
        return await self._get(path, params, partial(_json_body, valid=valid), context)

    async def observation_page(
        self, params: Mapping[str, str | int], *, context: Mapping[str, object] | None = None
    ) -> ObservationPage:
        """One observation search (``GET /observations``), parsed; retried as by get_json."""
        return await self._get("observations", params, _observation_page, context)

    async def _get(
        self,
        path: str,
        params: Mapping[str, str | int],
        decode: Callable[[bytes, str | None], _T],
        context: Mapping[str, object] | None,
    ) -> _T:
        url = f"{self._base}/{path.lstrip('/')}"
        query = {**self._base_params, **{key: str(value) for key, value in params.items()}}
        ctx = dict(context or {})
        last: str = "no attempt was made"
        shape_error = False
        for attempt in range(self._retry.attempts):
            await self._limits.request(on_wait=self._on_wait, host=self._host)
            try:
                return await self._attempt(url, query, decode, ctx)
            except _Retryable as exc:
                last, shape_error = str(exc), exc.bad_shape
            except REDIRECT_ERRORS as exc:
                raise ApiError(f"{redirect_failure(exc)}", url=url, context=ctx) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                last, shape_error = _describe(exc), False
            if attempt + 1 < self._retry.attempts:
                await asyncio.sleep(self._retry.delay(attempt, self._rng))
        error = ResponseShapeError if shape_error else ApiError
        message = f"the API failed after {self._retry.attempts} attempts: {last}"
        raise error(message, url=url, context=ctx)

    async def _attempt(
        self,
        url: str,
        query: dict[str, str],
        decode: Callable[[bytes, str | None], _T],
        ctx: dict[str, object],
    ) -> _T:
        async with self._session.get(url, params=query, timeout=self._timeout) as response:
            status = response.status
            if status == 429:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                # Everyone backs off from this host, not just this task.
                self._limits.backoff(wait if wait is not None else 60.0, host=self._host)
                raise _Retryable("HTTP 429 Too Many Requests")
            if status >= 500:
                raise _Retryable(f"HTTP {status} {response.reason or ''}".strip())
            data = await self._read_body(response, url, ctx)
            charset = response.charset
            if status >= 400:
                message = _error_message(_text(data, charset))
                raise ApiError(
                    f"the API refused the request: HTTP {status} {message}".strip(),
                    status=status,
                    url=str(response.url),
                    context=ctx,
                )
        return decode(data, charset)

    async def _read_body(
        self, response: aiohttp.ClientResponse, url: str, ctx: dict[str, object]
    ) -> bytes:
        """The body, read in pieces and refused past ``max_body`` bytes decompressed."""
        limit = self._max_body
        too_large = (
            f"the API's answer is larger than {limit:,} bytes once decompressed; "
            "it was refused (a broken or hostile server?)"
        )
        declared = response.content_length
        if (
            declared is not None
            and declared > limit
            and not response.headers.get("Content-Encoding")
        ):
            raise ApiError(too_large, url=url, context=ctx)
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.content.iter_chunked(_READ_CHUNK):
            received += len(chunk)
            if received > limit:
                raise ApiError(too_large, url=url, context=ctx)
            chunks.append(chunk)
        return b"".join(chunks)

    async def resolve_taxon(self, name: str) -> TaxonMatch:
        """The active taxon named ``name`` (case-insensitive), or a synonym / common name hit."""
        body = await self.get_json(
            "taxa", {"q": name, "per_page": 30}, valid=is_result_page, context={"species": name}
        )
        taxa = [taxon for taxon in parse_taxa_page(body) if taxon.is_active]
        wanted = name.casefold()
        for taxon in taxa:
            if taxon.name.casefold() == wanted:
                return TaxonMatch(taxon, None)
        for taxon in taxa:
            if taxon.matched_term and taxon.matched_term.casefold() == wanted:
                return TaxonMatch(taxon, taxon.matched_term)
        raise TaxonNotFoundError(name, [taxon.name for taxon in taxa[:3]])

    async def taxon_by_id(self, taxon_id: int, *, species: str | None = None) -> Taxon:
        body = await self.get_json(
            f"taxa/{taxon_id}", {}, valid=is_result_page, context={"species": species}
        )
        taxa = parse_taxa_page(body)
        if not taxa:
            raise ApiError(f"no iNaturalist taxon has id {taxon_id}", species=species)
        return taxa[0]

    @staticmethod
    def search_params(taxon_id: int, query: Query, id_above: int) -> dict[str, str | int]:
        params: dict[str, str | int] = {
            # The filters first: the walk's own parameters below always win.
            **query.filters.params(),
            "taxon_id": taxon_id,
            "photos": "true",
            "order_by": "id",
            "order": "asc",
            "per_page": MAX_PER_PAGE,
            "id_above": id_above,
        }
        if query.quality_param:
            params["quality_grade"] = query.quality_param
        if query.license_param:
            params["license"] = query.license_param
            params["photo_license"] = query.license_param
        return params

    async def observation_pages(
        self, taxon_id: int, query: Query, *, id_above: int = 0, species: str | None = None
    ) -> AsyncGenerator[ObservationPage, None]:
        """Walk the whole result set in ascending id order with ``id_above`` (never ``page``)."""
        while True:
            params = self.search_params(taxon_id, query, id_above)
            page = await self.observation_page(
                params, context={"species": species, "id_above": id_above}
            )
            if page.size == 0 or page.last_id is None:
                return
            if page.last_id <= id_above:
                raise ResponseShapeError(
                    "the API returned observations out of order; the walk cannot go on",
                    species=species,
                    id_above=id_above,
                )
            yield page
            id_above = page.last_id

    async def count_observations(
        self, taxon_id: int, query: Query, *, id_above: int = 0, species: str | None = None
    ) -> int:
        """How many observations a walk from ``id_above`` would see (one request, no results)."""
        params = self.search_params(taxon_id, query, id_above)
        params["per_page"] = 0
        body = await self.get_json(
            "observations", params, valid=is_result_page, context={"species": species}
        )
        total = body.get("total_results")
        return total if isinstance(total, int) else 0


def _text(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")


def _json_body(data: bytes, charset: str | None, *, valid: Callable[[Any], bool]) -> Any:
    """The JSON an answer holds, read as text in its charset; retried if not ``valid``."""
    try:
        body = json.loads(_text(data, charset))
    except (ValueError, RecursionError) as exc:
        # RecursionError: arrays or objects nested deeper than the parser goes.
        raise _Retryable("the answer was not JSON", bad_shape=True) from exc
    if not valid(body):
        raise _Retryable("the answer did not have the expected shape", bad_shape=True)
    return body


def _observation_page(data: bytes, charset: str | None) -> ObservationPage:
    """A search answer's page: decoded straight from UTF-8 to the few fields the parser
    reads (a real page of 200 is several MB, nearly all of it identifications), else by
    the general path, which decides (error, retry, or page) as for any other answer."""
    if _is_utf8(charset):
        page = decode_observation_page(data)
        if page is not None:
            return page
    return parse_observation_page(_json_body(data, charset, valid=is_result_page))


def _is_utf8(charset: str | None) -> bool:
    """True when the general path reads the body as UTF-8 (the only text the quick one reads)."""
    if charset is None:
        return True
    try:
        return codecs.lookup(charset).name == "utf-8"
    except (LookupError, ValueError):  # unknown, or a NUL in the name
        return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the request timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer was cut off"
    return redact(f"{type(exc).__name__}: {exc}") if str(exc) else type(exc).__name__


def _error_message(text: str) -> str:
    """The API's own words from an error body ``{"error": ..., "status": ...}``, if any."""
    try:
        body = json.loads(text)
    except ValueError:
        return ""
    if isinstance(body, dict):
        message = body.get("error")
        if isinstance(message, str):
            return f"({message[:200]})"
        if isinstance(message, dict) and isinstance(message.get("original"), dict):
            return f"({str(message['original'].get('error', ''))[:200]})"
    return ""
