"""Is this an image of the announced type, and whole? Checked before a photo is kept.

Pillow identifies the format from the head of the file (its header parsers, not ours: it
reads no further than the header, however long the metadata before the pixels); the
end markers of JPEG, PNG and GIF tell whether the body was cut off, which costs nothing
more than the file's last bytes. A file is never decoded: that would cost more CPU than
downloading it. Reasons name what was found, never the raw bytes (a hostile server must
not put binary or terminal escapes into the CSV files or the console).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

# Pillow loads its JPEG, PNG and GIF readers at the first image it opens: that is an
# import of several modules (tens of milliseconds), which must not happen on the event
# loop in the middle of a run (photos are checked there). Load them with this module.
Image.preinit()

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
_EXTENSION_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "tif": "image/tiff",
    "tiff": "image/tiff",
}
_BOMB = "decompression bomb"
_NAMES = {"JPEG": "a JPEG", "PNG": "a PNG", "GIF": "a GIF", "WEBP": "a WebP", "TIFF": "a TIFF"}


@dataclass(frozen=True, slots=True)
class ImageCheck:
    """What the check found: ``problem`` is None for a whole image of the announced type;
    ``size`` is its (width, height) when Pillow read it."""

    problem: str | None
    size: tuple[int, int] | None = None


def check_image(source: BinaryIO, tail: bytes, content_type: str) -> ImageCheck:
    """Is ``source`` (a file, read from its start as far as its header goes) ending with
    ``tail`` a whole image of ``content_type``? Safe to call from any thread."""
    if content_type not in PILLOW_FORMATS:
        return ImageCheck(None)  # another image/* type: nothing known to check against
    expected = PILLOW_FORMATS[content_type]
    if expected is None:
        # HEIC: an ISO media file whose first box is "ftyp" (Pillow has no reader for it).
        heic = source.read(12)[4:8] == b"ftyp"
        return ImageCheck(None if heic else "the body is not a HEIC image")
    found, size = _format_of(source)
    if found == _BOMB:
        return ImageCheck("the image claims more pixels than any photo has")
    if found != expected:
        what = _NAMES.get(found, f"a {found} image") if found else "something else"
        return ImageCheck(f"the server announced {_NAMES[expected]} image but sent {what}")
    if not _whole(expected, tail):
        return ImageCheck(f"the {expected} image is cut off (its end marker is missing)")
    return ImageCheck(None, size)


def check_file(path: Path, content_type: str) -> ImageCheck:
    """:func:`check_image` on a file already on disk (an earlier run's, to adopt it)."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - TAIL_BYTES))
            tail = handle.read()
            handle.seek(0)
            return check_image(handle, tail, content_type)
    except OSError as exc:
        return ImageCheck(f"cannot read {path.name}: {exc.strerror or exc}")


def content_type_for(extension: str) -> str:
    """The image type a saved file's extension stands for (``jpg`` when unknown)."""
    return _EXTENSION_TYPES.get(extension.lower().lstrip("."), "image/jpeg")


def _format_of(source: BinaryIO) -> tuple[str | None, tuple[int, int] | None]:
    try:
        with Image.open(source) as image:
            width, height = image.size
            return image.format, (int(width), int(height))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return _BOMB, None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return None, None


def _whole(kind: str, tail: bytes) -> bool:
    if kind == "JPEG":
        # Some encoders pad after the end-of-image marker.
        return tail.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if kind == "PNG":
        return tail.endswith(b"IEND\xaeB`\x82")
    if kind == "GIF":
        return tail.rstrip(b"\x00").endswith(b";")
    return True
