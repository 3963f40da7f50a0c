"""Deterministic, cheap photo files: real, decodable images padded to realistic sizes.

Each (photo id, size) gets its own bytes: a real image of the photo's type (JPEG, PNG or
GIF, as its extension says) with the pixel dimensions of that size, encoded by Pillow, a
comment naming the photo, and padding sliced from one shared pseudo-random pool inside a
block that decoders skip (a JPEG comment segment, a private PNG chunk, GIF comment
sub-blocks). So a downloader sees bodies of realistic length that differ per photo, and a
test can open any of them with Pillow, ``datasets`` or torchvision.

The encoded image is a flat grey field, cached per (type, width, height): encoding costs
once per shape, not once per request.
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
import struct
import zlib
from collections.abc import Callable, Mapping

from PIL import Image

from .data import PHOTO_SIZES, FakePhoto, media_type

#: Default body length in bytes per size: small, so tests stay fast, growing with the size.
#: A body is never shorter than its encoded image plus the label (a 2048 px JPEG is ~40 KB).
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
_PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}
# Ancillary (lower-case first letter), private (lower-case second), safe to copy: every
# PNG decoder skips it.
_PNG_PADDING_CHUNK = b"prVt"
_Filler = Callable[[int], bytes]


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

    def dimensions(self, photo: FakePhoto, size: str) -> tuple[int, int]:
        """The pixel width and height of ``photo`` served in ``size``."""
        return _dimensions(photo, size)

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
        image = _encoded(kind, width, height)
        if kind == "image/png":
            return _png(image, label, lambda n: self._filler(n, key), length)
        if kind == "image/gif":
            return _gif(image, label, lambda n: self._filler(n, key), length)
        return _jpeg(image, label, lambda n: self._filler(n, key), length)

    def _filler(self, length: int, key: int) -> bytes:
        length = max(0, length)
        while len(self._pool) < length + _POOL_SLACK:
            self._pool += self._pool
        start = (key * 7919) % _POOL_SLACK
        return self._pool[start : start + length]


@functools.lru_cache(maxsize=512)
def _encoded(kind: str, width: int, height: int) -> bytes:
    """A flat grey image of that type and shape, as Pillow encodes it."""
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": 50} if kind == "image/jpeg" else {}
    Image.new("L", (width, height), 128).save(buffer, _PILLOW_FORMATS[kind], **options)
    return buffer.getvalue()


def _jpeg(image: bytes, label: bytes, filler: _Filler, length: int) -> bytes:
    # Comment segments right after SOI: a COM segment holds at most 65,533 bytes.
    comment = _jpeg_comment(label)
    missing = length - len(image) - len(comment)
    padding = bytearray()
    while missing > 4:
        take = min(missing - 4, 65_533)
        padding += _jpeg_comment(filler(take))
        missing -= take + 4
    return image[:2] + comment + bytes(padding) + image[2:]


def _jpeg_comment(data: bytes) -> bytes:
    return b"\xff\xfe" + struct.pack(">H", len(data) + 2) + data


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(image: bytes, label: bytes, filler: _Filler, length: int) -> bytes:
    # Signature (8) + IHDR chunk (25), then the text and padding chunks, then the rest.
    head, rest = image[:33], image[33:]
    text = _png_chunk(b"tEXt", b"Comment\x00" + label)
    missing = length - len(image) - len(text) - 12
    padding = _png_chunk(_PNG_PADDING_CHUNK, filler(missing)) if missing > 0 else b""
    return head + text + padding + rest


def _gif(image: bytes, label: bytes, filler: _Filler, length: int) -> bytes:
    # Comment extensions go right after the logical screen descriptor and its global
    # colour table; their data travel in sub-blocks of at most 255 bytes.
    flags = image[10]
    table = 3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0
    cut = 13 + table
    comment = _gif_comment(label)
    missing = length - len(image) - len(comment) - 3
    padding = _gif_comment(filler(missing - missing // 256)) if missing > 0 else b""
    # Comment extensions are a GIF89a feature; Pillow writes 87a for a plain image.
    return b"GIF89a" + image[6:cut] + comment + padding + image[cut:]


def _gif_comment(data: bytes) -> bytes:
    blocks = b"".join(
        bytes([len(piece)]) + piece
        for piece in (data[i : i + 255] for i in range(0, len(data), 255))
    )
    return b"\x21\xfe" + blocks + b"\x00"


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
