"""The answers the fake server sends, good and bad, before they go on the wire.

Error bodies copy what each real layer says: the API's ``{"error", "status"}`` JSON,
Varnish's HTML 429, a load balancer's HTML 503, S3's XML error documents.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from dataclasses import dataclass, field, replace

from .faults import FaultKind, FaultRule
from .render import dumps

JSON = "application/json; charset=utf-8"
HTML = "text/html; charset=utf-8"
XML = "application/xml"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: object, status: int = 200) -> Reply:
    return Reply(status, dumps(body), JSON)


def api_error(status: int, message: str) -> Reply:
    return json_reply({"error": message, "status": status}, status)


def html_page(status: int, title: str, text: str) -> Reply:
    page = (
        "<!DOCTYPE html>\n<html><head><title>"
        f"{title}</title></head>\n<body><h1>{title}</h1>\n<p>{text}</p>\n</body></html>\n"
    )
    return Reply(status, page.encode(), HTML)


def s3_error(status: int, code: str, message: str, key: str) -> Reply:
    request_id = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()[:16].upper()
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><Key>{key.lstrip('/')}</Key>"
        f"<RequestId>{request_id}</RequestId><HostId>fake/{request_id}=</HostId></Error>"
    )
    return Reply(status, document.encode(), XML)


def too_many_requests(retry_after: int) -> Reply:
    # Varnish throttles before the API sees the request: its page, not the API's JSON.
    page = html_page(
        429,
        "429 Too Many Requests",
        "Error 429 Too Many Requests<br>Guru Meditation: XID: 1234567<hr>Varnish cache server",
    )
    return replace(page, headers={"Retry-After": str(retry_after)})


def not_found(kind: str, path: str) -> Reply:
    """404 as each host says it: JSON from the API, XML from S3, HTML elsewhere."""
    if kind == "api":
        return api_error(404, "Not Found")
    if path.startswith("/s3/"):
        return s3_error(404, "NoSuchKey", "The specified key does not exist.", path[3:])
    return html_page(404, "404 Not Found", "The requested URL was not found on this server.")


def spoiled(rule: FaultRule, kind: str, path: str, genuine: Reply) -> Reply:
    """The answer a fault rule puts in place of ``genuine`` (TRUNCATED, RESET and STALL
    are about the connection and are handled by the server)."""
    from_s3 = path.startswith("/s3/")
    match rule.kind:
        case FaultKind.SERVICE_UNAVAILABLE:
            if from_s3:
                return s3_error(
                    rule.status or 503, "SlowDown", "Please reduce your request rate.", path[3:]
                )
            return html_page(
                rule.status or 503,
                "503 Service Unavailable",
                "No server is available to handle this request.",
            )
        case FaultKind.TOO_MANY_REQUESTS:
            return replace(too_many_requests(rule.retry_after), status=rule.status or 429)
        case FaultKind.SERVER_ERROR:
            if kind == "api":
                return api_error(rule.status or 500, "Error")
            return s3_error(
                rule.status or 500, "InternalError", "We encountered an internal error.", path
            )
        case FaultKind.NOT_FOUND:
            return replace(not_found(kind, path), status=rule.status or 404)
        case FaultKind.HTML_PAGE:
            return html_page(
                rule.status or 200,
                "iNaturalist",
                "Sorry, something went wrong. We are looking into it.",
            )
        case FaultKind.S3_XML:
            return s3_error(rule.status or 403, "AccessDenied", "Access Denied", path)
        case FaultKind.MALFORMED_JSON:
            cut = genuine.body[: max(1, len(genuine.body) // 2)]
            return Reply(rule.status or 200, cut, JSON)
        case FaultKind.WRONG_SHAPE:
            return json_reply({"status": "ok", "message": "maintenance"}, rule.status or 200)
        case FaultKind.DEEP_JSON:
            depth = 100_000
            nested = b'{"results": ' + b"[" * depth + b"]" * depth + b"}"
            return Reply(rule.status or 200, nested, JSON)
        case FaultKind.REDIRECT:
            body = html_page(rule.status or 302, "302 Found", "Moved.")
            return replace(body, headers={"Location": rule.location or path})
        case FaultKind.GZIP_BOMB:
            return Reply(
                rule.status or 200,
                gzip_bomb(rule.inflated),
                JSON,
                {"Content-Encoding": "gzip"},
            )
        case _:
            return genuine


@functools.lru_cache(maxsize=4)
def gzip_bomb(inflated: int) -> bytes:
    """A gzip body that inflates to ``inflated`` bytes: ``{"results":[`` then spaces."""
    head = b'{"results":['
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
    pieces = [packer.compress(head)]
    block = b" " * (1 << 20)
    left = max(0, inflated - len(head))
    while left > 0:
        pieces.append(packer.compress(block[: min(left, len(block))]))
        left -= len(block)
    pieces.append(packer.flush())
    return b"".join(pieces)
