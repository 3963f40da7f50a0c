"""Is this an image of the announced type, and whole? Checked before a photo is kept.

Pillow identifies the format from the head of the file (its header parsers, not ours: it
reads no further than the header, however long the metadata before the pixels); the
end markers of JPEG, PNG and GIF tell whether the body was cut off, which costs nothing
more than the file's last bytes. A file is never decoded: that would cost more CPU than
downloading it. Reasons name what was found, never the raw bytes (a hostile server must
not put binary or terminal escapes into the CSV files or the console).
"""

from __future__ import annotations

from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

#: Bytes of a file's tail kept for the completeness check.
TAIL_BYTES = 64

#: The Pillow format of each image content type the tool saves (None: no Pillow plugin).
PILLOW_FORMATS: dict[str, str | None] = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
    "image/tiff": "TIFF",
    "image/heic": None,
}
_BOMB = "decompression bomb"
_NAMES = {"JPEG": "a JPEG", "PNG": "a PNG", "GIF": "a GIF", "WEBP": "a WebP", "TIFF": "a TIFF"}


def check_image(source: BinaryIO, tail: bytes, content_type: str) -> str | None:
    """Why ``source`` (a file, read from its start as far as its header goes) ending with
    ``tail`` is not a whole image of ``content_type``; None when it is. Safe to call from
    any thread."""
    if content_type not in PILLOW_FORMATS:
        return None  # another image/* type: nothing known to check against
    expected = PILLOW_FORMATS[content_type]
    if expected is None:
        # HEIC: an ISO media file whose first box is "ftyp" (Pillow has no reader for it).
        return None if source.read(12)[4:8] == b"ftyp" else "the body is not a HEIC image"
    found = _format_of(source)
    if found == _BOMB:
        return "the image claims more pixels than any photo has"
    if found != expected:
        what = _NAMES.get(found, f"a {found} image") if found else "something else"
        return f"the server announced {_NAMES[expected]} image but sent {what}"
    if not _whole(expected, tail):
        return f"the {expected} image is cut off (its end marker is missing)"
    return None


def _format_of(source: BinaryIO) -> str | None:
    try:
        with Image.open(source) as image:
            return image.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return _BOMB
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None


def _whole(kind: str, tail: bytes) -> bool:
    if kind == "JPEG":
        # Some encoders pad after the end-of-image marker.
        return tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if kind == "PNG":
        return tail.endswith(b"IEND\xaeB`\x82")
    if kind == "GIF":
        return tail.rstrip(b"\x00").endswith(b";")
    return True
