"""Deterministic, cheap stand-ins for photo files.

Each (photo id, size) gets its own bytes: a real magic header of the photo's type (with the
pixel dimensions of that size, so header sniffers read sensible numbers), a comment naming
the photo, and filler sliced from one shared pseudo-random pool. The bodies are not
decodable images; they only need to look like images to a downloader and to differ.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from collections.abc import Mapping

from .data import PHOTO_SIZES, FakePhoto, media_type

#: Default body length in bytes per size: small, so tests stay fast, growing with the size.
DEFAULT_PHOTO_BYTES: dict[str, int] = {
    "square": 1_000,
    "thumb": 1_500,
    "small": 3_000,
    "medium": 8_000,
    "large": 20_000,
    "original": 48_000,
}
_POOL_SEED = 20240614
_POOL_SLACK = 1 << 16


class ImageFactory:
    """Builds the bytes of any photo in any size.

    ``sizes`` overrides the byte lengths of :data:`DEFAULT_PHOTO_BYTES`; ``scale`` multiplies
    them all (``scale=100`` gives a roughly 800 KB "medium", for benchmarks). Each photo's
    length varies by up to ±20 % around that, deterministically.
    """

    def __init__(self, sizes: Mapping[str, int] | None = None, *, scale: float = 1.0) -> None:
        self.sizes = {**DEFAULT_PHOTO_BYTES, **(sizes or {})}
        self.scale = scale
        self._pool = random.Random(_POOL_SEED).randbytes(1 << 18)

    def length(self, photo_id: int, size: str) -> int:
        base = self.sizes.get(size, self.sizes["medium"]) * self.scale
        jitter = 0.8 + 0.4 * (_digest(photo_id, size) % 1000) / 1000
        return max(64, int(base * jitter))

    def render(self, photo: FakePhoto, size: str) -> bytes:
        """The complete file of ``photo`` in ``size``."""
        width, height = _dimensions(photo, size)
        kind = media_type(photo.extension)
        label = f"inat-async fake photo {photo.id} {size}".encode()
        return self._build(kind, width, height, label, self.length(photo.id, size), photo.id)

    def placeholder(self, path: str) -> bytes:
        """The stand-in PNG served for a hidden or flagged photo."""
        return self._build("image/png", 75, 75, path.encode(), 900, zlib.crc32(path.encode()))

    def _build(
        self, kind: str, width: int, height: int, label: bytes, length: int, key: int
    ) -> bytes:
        if kind == "image/png":
            head = _png_head(width, height, label)
            tail = b"IEND"
        elif kind == "image/gif":
            head = _gif_head(width, height, label)
            tail = b";"
        else:
            head = _jpeg_head(width, height, label)
            tail = b"\xff\xd9"
        filler = self._filler(max(0, length - len(head) - len(tail) - 12), key)
        if kind == "image/png":
            # The filler travels as one IDAT chunk so the chunk structure stays well formed.
            idat = b"IDAT" + filler
            body = struct.pack(">I", len(filler)) + idat + struct.pack(">I", zlib.crc32(idat))
            return head + body + struct.pack(">I", 0) + tail + struct.pack(">I", zlib.crc32(tail))
        return head + filler + tail

    def _filler(self, length: int, key: int) -> bytes:
        while len(self._pool) < length + _POOL_SLACK:
            self._pool += self._pool
        start = (key * 7919) % _POOL_SLACK
        return self._pool[start : start + length]


def _digest(photo_id: int, size: str) -> int:
    raw = hashlib.blake2b(f"{photo_id}/{size}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big")


def _dimensions(photo: FakePhoto, size: str) -> tuple[int, int]:
    if size == "square":
        return 75, 75
    longest = PHOTO_SIZES.get(size, PHOTO_SIZES["medium"])
    # Sizes never upscale: a small original is served as is for the bigger sizes.
    ratio = min(1.0, longest / max(photo.width, photo.height, 1))
    return max(1, round(photo.width * ratio)), max(1, round(photo.height * ratio))


def _jpeg_head(width: int, height: int, label: bytes) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comment = b"\xff\xfe" + struct.pack(">H", len(label) + 2) + label
    # Baseline SOF0 with three components: where sniffers read the dimensions from.
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3)
    sof0 += b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + comment + sof0


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_head(width: int, height: int, label: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = b"Comment\x00" + label
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"tEXt", text)


def _gif_head(width: int, height: int, label: bytes) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    comment = b"\x21\xfe" + bytes([min(len(label), 255)]) + label[:255] + b"\x00"
    return b"GIF89a" + screen + comment
