"""The fake iNaturalist: API and both photo hosts in one aiohttp app on loopback.

Routes (``BASE`` is ``http://127.0.0.1:<port>``)::

    BASE/v1/taxa?q=...                  taxon search        BASE/v1/taxa/<ids>
    BASE/v1/observations?...            observation search  BASE/v1/observations/<ids>
    BASE/v1/observations/species_counts leaf taxa counts    BASE/v1/controlled_terms
    BASE/v1/places/autocomplete?q=...   places by name      BASE/v1/places/<ids>
    BASE/s3/photos/<id>/<size>.<ext>     "inaturalist-open-data.s3.amazonaws.com"
    BASE/static/photos/<id>/<size>.<ext> "static.inaturalist.org"
    BASE/s3/metadata/inaturalist-open-data-latest.tar.gz, BASE/s3/<table>.csv.gz
                                        the bucket's Open Data tables (Range requests work)
    BASE/static/attachment_defaults/...,  BASE/www/assets/...   placeholder images
    BASE/_fake/...                      control: log, summary, faults, settings (JSON)

Use it as ``async with FakeInatServer(dataset) as server:`` in async tests, or
``with FakeInatServer(dataset).run_in_thread() as server:`` from synchronous ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import socket
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from aiohttp import web

from .catalog import FAKE_PLACES
from .data import (
    PHOTO_SIZES,
    PLACEHOLDERS,
    FakeDataset,
    FakeObservation,
    FakePhoto,
    demo_dataset,
)
from .faults import FaultKind, FaultRule, Faults, RequestContext
from .heavy import heavy_observation_json
from .images import ImageFactory
from .log import RequestLog, RequestRecord
from .opendata import in_bucket, open_data_files
from .query import (
    ApiFailure,
    ObservationIndex,
    parse_observation_search,
    search_places,
    search_taxa,
    species_counts,
)
from .render import (
    controlled_terms_json,
    dumps,
    observation_json,
    place_json,
    species_count_json,
    taxon_json,
)
from .replies import (
    Reply,
    api_error,
    json_reply,
    not_found,
    s3_error,
    spoiled,
    too_many_requests,
)

if TYPE_CHECKING:
    from .thread import ServerThread

_PHOTO_PATH = re.compile(r"^/(s3|static)/photos/(\d+)/([A-Za-z]+)(?:\.([^/]*))?$")
_IDS = re.compile(r"^[0-9,]*[0-9]$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_LAST_MODIFIED = "Wed, 14 Jun 2023 12:00:00 GMT"


@dataclass(slots=True)
class ServerSettings:
    """Switches a test may flip while the server runs (plain attributes, any thread)."""

    #: Seconds every API answer takes (real iNaturalist: about 0.3-3 s, pages the most).
    api_latency: float = 0.0
    photo_latency: float = 0.0
    #: Observations as heavy as real ones (identifications, ancestries, users: about
    #: 35 KB each instead of 4; see :mod:`.heavy`); the server caches each once.
    heavy_pages: bool = False
    #: Bytes per second for each photo response (streamed in chunks); None is unlimited.
    photo_bandwidth: int | None = None
    chunk_size: int = 16 * 1024
    #: Emulate the hard throttle: more API requests than this in 60 s get Varnish's 429,
    #: with Retry-After saying when the oldest of them leaves the window.
    throttle_per_minute: int | None = None
    #: The open-data bucket lets anyone list it, so a missing key is S3's 404 NoSuchKey;
    #: False answers 403 AccessDenied instead, as S3 does without list permission.
    bucket_listable: bool = True
    #: False answers every ranged request with the whole body (200), as some proxies do.
    honour_ranges: bool = True
    #: Hostile answers: observation id -> keys that replace those of its JSON (top level),
    #: e.g. ``{obs_id: {"id": -5}}`` or ``{obs_id: {"photos": [...]}}``.
    observation_patches: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: photo id -> keys that replace those of its JSON wherever it is listed, e.g.
    #: ``{photo_id: {"original_dimensions": {"width": 2**63, "height": 1}}}``.
    photo_patches: dict[int, dict[str, Any]] = field(default_factory=dict)


def classify(path: str, query: str = "") -> RequestContext:
    if path.startswith("/v1/") or path == "/v1":
        return RequestContext("api", path, query=query)
    match = _PHOTO_PATH.match(path)
    if match:
        return RequestContext("photo", path, int(match.group(2)), match.group(3))
    if path in PLACEHOLDERS.values():
        return RequestContext("placeholder", path)
    return RequestContext("other", path)


class FakeInatServer:
    """A faithful, deterministic, fast stand-in for api.inaturalist.org and its photo hosts.

    Example::

        async with FakeInatServer(build_dataset({"Apis mellifera": 50})) as server:
            server.faults.fail_photo(photo_id, FaultKind.TRUNCATED, times=2)
            await run_client(api_url=server.api_url)
            assert not server.log.refetched_photos()
    """

    def __init__(
        self,
        dataset: FakeDataset | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | Iterable[FaultRule] | None = None,
        settings: ServerSettings | None = None,
        api_latency: float = 0.0,
        photo_latency: float = 0.0,
        photo_bandwidth: int | None = None,
        throttle_per_minute: int | None = None,
        photo_bytes: dict[str, int] | None = None,
        photo_bytes_scale: float = 1.0,
        heavy_pages: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.dataset = dataset if dataset is not None else demo_dataset()
        self.host = host
        self.faults = faults if isinstance(faults, Faults) else Faults(list(faults or ()))
        self.settings = settings or ServerSettings(
            api_latency=api_latency,
            photo_latency=photo_latency,
            photo_bandwidth=photo_bandwidth,
            throttle_per_minute=throttle_per_minute,
            heavy_pages=heavy_pages,
        )
        self.images = ImageFactory(photo_bytes, scale=photo_bytes_scale)
        self.log = RequestLog()
        self._requested_port = port
        self._port: int | None = None
        self._clock = clock
        self._index = ObservationIndex(self.dataset)
        self._json_cache: dict[tuple[int, bool], bytes] = {}
        self._json_version = -1
        self._arrivals: deque[float] = deque()
        self._bucket: tuple[int, dict[str, bytes]] = (-1, {})
        self._runner: web.AppRunner | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What the client takes as its API base, e.g. ``http://127.0.0.1:8123/v1``."""
        return f"{self.base_url}/v1"

    def photo_url(self, photo: FakePhoto | int, size: str = "square") -> str:
        found = self.dataset.photo(photo) if isinstance(photo, int) else photo
        if found is None:
            raise KeyError(photo)
        return found.url(self.base_url, size)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that hangs up cancels the handler, which the
        # log records as "aborted"; a short shutdown_timeout stops STALLed handlers fast.
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if os.name != "nt":  # on Windows it would let two servers share a port
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._port = sock.getsockname()[1]
        self._runner = runner

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def run_in_thread(self) -> ServerThread:
        """A context manager serving from a background thread: for synchronous tests."""
        from .thread import ServerThread

        return ServerThread(self)

    # -- request handling -------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await self._control(request)
        ctx = classify(request.path, request.query_string)
        record = self.log.open(
            RequestRecord(
                seq=0,
                method=request.method,
                path=request.path,
                query=request.query_string,
                kind=ctx.kind,
                started=self._now(),
                photo_id=ctx.photo_id,
                size=ctx.size,
                user_agent=request.headers.get("User-Agent"),
                authorization=request.headers.get("Authorization"),
                cookie=request.headers.get("Cookie"),
            )
        )
        try:
            return await self._serve(request, ctx, record)
        except asyncio.CancelledError:
            record.outcome = "aborted"
            raise
        finally:
            record.finished = self._now()

    async def _serve(
        self, request: web.Request, ctx: RequestContext, record: RequestRecord
    ) -> web.StreamResponse:
        latency = self.settings.api_latency if ctx.kind == "api" else self.settings.photo_latency
        if latency > 0:
            await asyncio.sleep(latency)
        if ctx.kind == "api":
            wait = self._throttled()
            if wait is not None:
                record.fault = "throttled"
                return await self._send(request, record, too_many_requests(wait))
        rule = self.faults.pick(ctx)
        if rule is not None:
            record.fault = str(rule.kind)
            if rule.kind is FaultKind.RESET:
                record.outcome = "reset"
                if request.transport is not None:
                    request.transport.close()
                return web.Response()
            if rule.kind is FaultKind.STALL:
                await asyncio.sleep(rule.delay)
        reply = self._reply(request, ctx)
        if rule is not None and rule.kind in _HOSTILE_BODIES and reply.status == 200:
            return await self._hostile(request, record, rule, reply)
        if rule is None or rule.kind is FaultKind.STALL:
            ranged = self.settings.honour_ranges and (
                ctx.kind == "photo" or ctx.path.startswith("/s3/")
            )
            return await self._send(request, record, reply, ranged=ranged)
        if rule.kind is FaultKind.TRUNCATED:
            return await self._send(request, record, reply, cut_at=rule.cut_at)
        return await self._send(request, record, spoiled(rule, ctx.kind, ctx.path, reply))

    async def _hostile(
        self, request: web.Request, record: RequestRecord, rule: FaultRule, reply: Reply
    ) -> web.StreamResponse:
        """A 200 whose body or length lies: see the kinds in :data:`_HOSTILE_BODIES`."""
        body, kind = reply.body, rule.kind
        headers = {**reply.headers, "Content-Type": reply.content_type}
        response = web.StreamResponse(status=200, headers=headers)
        record.status = 200
        if kind is FaultKind.HUGE_LENGTH:
            response.content_length = rule.length or 10**12
        elif kind is FaultKind.SHORT_LENGTH:
            body = body[: max(1, int(len(body) * rule.cut_at))]
            response.content_length = len(body)
        elif kind is FaultKind.NOT_AN_IMAGE:
            if rule.html:
                body = b"<html><body>Please log in to the network</body></html>"
            else:
                body = b"\xff" * (rule.length or len(body))
            response.content_length = len(body)
        elif kind is FaultKind.TRICKLE:
            response.content_length = len(body)
        else:  # ENDLESS: chunked, no length
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if kind is FaultKind.ENDLESS:
                await response.write(body[:1024])
                record.bytes_sent = 1024
                filler = b"\0" * 65536
                while record.bytes_sent < (rule.length or 1 << 30):
                    await response.write(filler)
                    record.bytes_sent += len(filler)
            elif kind is FaultKind.TRICKLE:
                for offset in range(len(body)):
                    await response.write(body[offset : offset + 1])
                    record.bytes_sent += 1
                    await asyncio.sleep(rule.delay)
            else:
                await response.write(body)
                record.bytes_sent = len(body)
            if kind is FaultKind.HUGE_LENGTH:
                if request.transport is not None:
                    request.transport.close()
                record.outcome = "cut"
                return response
            await response.write_eof()
        except ConnectionError:
            record.outcome = "aborted"
            return response
        record.outcome = "complete"
        return response

    def _throttled(self) -> int | None:
        """Seconds until a slot frees when over ``throttle_per_minute``, else None."""
        limit = self.settings.throttle_per_minute
        if not limit:
            return None
        now, arrivals = self._now(), self._arrivals
        while arrivals and arrivals[0] <= now - 60:
            arrivals.popleft()
        if len(arrivals) >= limit:
            return max(1, math.ceil(arrivals[0] + 60 - now))
        arrivals.append(now)
        return None

    def _reply(self, request: web.Request, ctx: RequestContext) -> Reply:
        if request.method not in ("GET", "HEAD"):
            return api_error(404, "Not Found") if ctx.kind == "api" else not_found("", ctx.path)
        if ctx.kind == "api":
            try:
                return self._api(ctx.path, request)
            except ApiFailure as failure:
                return api_error(failure.status, failure.message)
        if ctx.kind == "photo":
            return self._photo(ctx)
        if ctx.kind == "placeholder":
            return Reply(
                200, self.images.placeholder(ctx.path), "image/png", _image_headers(ctx.path)
            )
        if ctx.path.startswith("/s3/"):
            return self._bucket_object(ctx.path)
        return not_found(ctx.kind, ctx.path)

    def _api(self, path: str, request: web.Request) -> Reply:
        params = {key: ",".join(request.query.getall(key)) for key in request.query}
        parts = path.rstrip("/").split("/")[2:]
        if parts == ["observations"]:
            return self._observations(params)
        if parts == ["taxa"]:
            return self._taxa(params)
        if parts == ["observations", "species_counts"]:
            return self._species_counts(params)
        if parts == ["controlled_terms"]:
            return json_reply(controlled_terms_json())
        if parts == ["places", "autocomplete"]:
            total, size, hits = search_places(FAKE_PLACES, params)
            return json_reply(
                {
                    "total_results": total,
                    "page": 1,
                    "per_page": size,
                    "results": [place_json(place) for place in hits],
                }
            )
        if len(parts) == 2 and parts[0] == "places":
            if not _IDS.match(parts[1]):
                raise ApiFailure(422, "invalid ID")
            wanted = {int(i) for i in parts[1].split(",") if i}
            places = [place_json(p, full=True) for p in FAKE_PLACES if p.id in wanted]
            return json_reply(
                {
                    "total_results": len(places),
                    "page": 1,
                    "per_page": len(places),
                    "results": places,
                }
            )
        if len(parts) == 2 and parts[0] in ("observations", "taxa"):
            if not _IDS.match(parts[1]):
                raise ApiFailure(422, "invalid ID")
            ids = [int(i) for i in parts[1].split(",") if i][:200]
            if parts[0] == "taxa":
                taxa = [t for i in ids if (t := self.dataset.taxon(i)) is not None]
                results = [taxon_json(t, self.dataset, self.base_url) for t in taxa]
                return json_reply(
                    {
                        "total_results": len(results),
                        "page": 1,
                        "per_page": len(results),
                        "results": results,
                    }
                )
            found = [o for i in ids if (o := self.dataset.observation(i)) is not None]
            return self._page(len(found), 1, 30 if not found else len(ids), found, only_id=False)
        if parts == ["ping"]:
            return json_reply({"status": "available"})
        raise ApiFailure(404, "Not Found")

    def _observations(self, params: dict[str, str]) -> Reply:
        search = parse_observation_search(params, self.dataset)
        total, results = self._index.search(search)
        return self._page(total, search.page, search.per_page, results, only_id=search.only_id)

    def _page(
        self, total: int, page: int, per_page: int, results: list[FakeObservation], *, only_id: bool
    ) -> Reply:
        if only_id:
            items = [dumps({"id": obs.id}) for obs in results]
        else:
            items = [self._observation_bytes(obs.id) for obs in results]
        head = dumps({"total_results": total, "page": page, "per_page": per_page})[:-1]
        # Assembled from cached, pre-serialised observations: a 200-result page stays cheap.
        body = head + b',"results":[' + b",".join(items) + b"]}"
        return Reply(200, body, "application/json; charset=utf-8")

    def _observation_bytes(self, obs_id: int) -> bytes:
        if self.settings.observation_patches or self.settings.photo_patches:
            return self._patched_observation(obs_id)
        if self._json_version != self.dataset.version:
            self._json_cache = {}
            self._json_version = self.dataset.version
        heavy = self.settings.heavy_pages
        cached = self._json_cache.get((obs_id, heavy))
        if cached is None:
            obs = self.dataset.observation(obs_id)
            if obs is None:
                return b"null"
            render = heavy_observation_json if heavy else observation_json
            cached = dumps(render(obs, self.dataset, self.base_url))
            self._json_cache[obs_id, heavy] = cached
        return cached

    def _species_counts(self, params: dict[str, str]) -> Reply:
        total, page, size, counts = species_counts(self._index, params)
        results = [
            species_count_json(taxon, count, self.dataset, self.base_url) for taxon, count in counts
        ]
        return json_reply(
            {"total_results": total, "page": page, "per_page": size, "results": results}
        )

    def _patched_observation(self, obs_id: int) -> bytes:
        """An observation as a hostile or broken server sends it (never cached)."""
        obs = self.dataset.observation(obs_id)
        if obs is None:
            return b"null"
        data = observation_json(obs, self.dataset, self.base_url)
        photo_patches = _keyed(self.settings.photo_patches)
        for photo in data["photos"]:
            photo.update(photo_patches.get(photo["id"], {}))
        data.update(_keyed(self.settings.observation_patches).get(obs_id, {}))
        return dumps(data)

    def _taxa(self, params: dict[str, str]) -> Reply:
        total, page, per_page, hits = search_taxa(self.dataset, params)
        results = [
            taxon_json(hit.taxon, self.dataset, self.base_url, matched_term=hit.matched_term)
            for hit in hits
        ]
        return json_reply(
            {"total_results": total, "page": page, "per_page": per_page, "results": results}
        )

    def _photo(self, ctx: RequestContext) -> Reply:
        match = _PHOTO_PATH.match(ctx.path)
        if match is None:
            return not_found("photo", ctx.path)
        size, extension = match.group(3), match.group(4)
        photo = self.dataset.photo(int(match.group(2)))
        # Like S3, the key must match exactly: same size name, same extension, same case.
        if (
            photo is None
            or photo.placeholder is not None
            or size not in PHOTO_SIZES
            or (extension or "") != photo.extension
        ):
            return (
                self._missing_key(ctx.path) if match.group(1) == "s3" else not_found("", ctx.path)
            )
        if match.group(1) == "s3" and not in_bucket(photo):
            # The bucket holds openly licensed photos only.
            return self._missing_key(ctx.path)
        body = self.images.render(photo, size)
        return Reply(200, body, photo.media_type, _image_headers(ctx.path))

    def _missing_key(self, path: str) -> Reply:
        if self.settings.bucket_listable:
            return not_found("photo", path)
        return s3_error(403, "AccessDenied", "Access Denied", path[3:])

    def _bucket_object(self, path: str) -> Reply:
        """The Open Data tables and bundle of the dataset, built once per dataset version."""
        version, objects = self._bucket
        if version != self.dataset.version:
            objects = open_data_files(self.dataset).bucket_objects()
            self._bucket = (self.dataset.version, objects)
        body = objects.get(path[len("/s3/") :])
        if body is None:
            return self._missing_key(path)
        return Reply(200, body, "application/gzip", _image_headers(path))

    # -- writing ----------------------------------------------------------------------------

    async def _send(
        self,
        request: web.Request,
        record: RequestRecord,
        reply: Reply,
        *,
        cut_at: float | None = None,
        ranged: bool = False,
    ) -> web.StreamResponse:
        status, body, headers = reply.status, reply.body, dict(reply.headers)
        if ranged and status == 200:
            status, body, headers = _apply_range(request.headers.get("Range"), body, headers)
        headers["Content-Type"] = reply.content_type
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        record.status, record.content_length = status, len(body)
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            record.outcome = "complete"
            return response
        limit = len(body)
        if cut_at is not None:
            limit = min(len(body) - 1, max(1, int(len(body) * cut_at)))
        bandwidth = self.settings.photo_bandwidth if record.kind == "photo" else None
        try:
            await self._write(response, memoryview(body)[:limit], bandwidth, record)
            if cut_at is not None:
                # Content-Length promised more: closing now is a body cut off mid-way.
                if request.transport is not None:
                    request.transport.close()
                record.outcome = "cut"
                return response
            await response.write_eof()
        except ConnectionError:
            record.outcome = "aborted"
            return response
        record.outcome = "complete"
        return response

    async def _write(
        self,
        response: web.StreamResponse,
        data: memoryview,
        bandwidth: int | None,
        record: RequestRecord,
    ) -> None:
        if not bandwidth:
            await response.write(data)
            record.bytes_sent = len(data)
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunk = max(1, min(self.settings.chunk_size, bandwidth // 10 or 1))
        for offset in range(0, len(data), chunk):
            piece = data[offset : offset + chunk]
            await response.write(piece)
            record.bytes_sent += len(piece)
            delay = start + record.bytes_sent / bandwidth - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    # -- control endpoints --------------------------------------------------------------------

    async def _control(self, request: web.Request) -> web.StreamResponse:
        """JSON control plane for tests that run the server in another process."""
        action = (request.method, request.path.rstrip("/"))
        if action == ("GET", "/_fake/log"):
            return web.json_response({"records": [r.to_json() for r in self.log.records()]})
        if action == ("DELETE", "/_fake/log"):
            self.log.clear()
            return web.json_response({"cleared": True})
        if action == ("GET", "/_fake/summary"):
            summary = {**self.log.summary(), "species": self.dataset.describe()}
            return web.json_response(summary)
        if action == ("GET", "/_fake/faults"):
            return web.json_response({"rules": [r.describe() for r in self.faults.rules]})
        if action == ("POST", "/_fake/faults"):
            data = await request.json()
            known = {f.name for f in fields(FaultRule) if not f.name.startswith("_")}
            options = {k: v for k, v in data.items() if k in known and k != "kind"}
            try:
                rule = FaultRule(FaultKind(data["kind"]), **options)
            except (KeyError, TypeError, ValueError) as error:
                return web.json_response({"error": repr(error), "status": 400}, status=400)
            return web.json_response(self.faults.add(rule).describe())
        if action == ("DELETE", "/_fake/faults"):
            self.faults.clear()
            return web.json_response({"cleared": True})
        if action == ("POST", "/_fake/settings"):
            data = await request.json()
            for f in fields(ServerSettings):
                if f.name in data:
                    setattr(self.settings, f.name, data[f.name])
            return web.json_response(
                {f.name: getattr(self.settings, f.name) for f in fields(ServerSettings)}
            )
        return web.json_response({"error": "Not Found", "status": 404}, status=404)


def _keyed(patches: dict[Any, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    # Patches set through the JSON control plane arrive with string keys.
    return {int(key): value for key, value in patches.items()}


#: Fault kinds answered by :meth:`FakeInatServer._hostile`: a 200 whose body or length lies.
_HOSTILE_BODIES = frozenset(
    {
        FaultKind.ENDLESS,
        FaultKind.HUGE_LENGTH,
        FaultKind.SHORT_LENGTH,
        FaultKind.TRICKLE,
        FaultKind.NOT_AN_IMAGE,
    }
)


def _image_headers(path: str) -> dict[str, str]:
    etag = hashlib.blake2b(path.encode(), digest_size=12).hexdigest()
    return {
        "ETag": f'"{etag}"',
        "Last-Modified": _LAST_MODIFIED,
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }


def _apply_range(
    header: str | None, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes, dict[str, str]]:
    """One ``bytes=a-b`` range as S3 honours it: 206, or 416 when it starts past the end."""
    match = _RANGE.match(header or "")
    if match is None or match.groups() == ("", ""):
        return 200, body, headers
    first, last = match.groups()
    size = len(body)
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(size - 1, int(last) if last else size - 1)
    if start >= size or start > end:
        return 416, b"", {**headers, "Content-Range": f"bytes */{size}"}
    return 206, body[start : end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
