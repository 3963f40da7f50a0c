"""What a stored photo file is, read by Pillow: its pixel size, and conversion to PNG.

Pillow reads only the header to answer :func:`image_size` (well under a millisecond for
a photo in the page cache), so callers may use it on the event loop right after a
download.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image file, or None when Pillow cannot read it."""
    try:
        with warnings.catch_warnings():
            # A huge image is still a photo to record, not a warning to raise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return None
    return int(width), int(height)


def convert_to_png(source: Path, target: BinaryIO) -> tuple[int, int]:
    """Write the first frame of ``source`` (e.g. a GIF) to ``target`` as PNG; its size.

    Raises OSError (Pillow's UnidentifiedImageError is one) when ``source`` is no image.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(source) as image:
            image.seek(0)
            frame = image.convert("RGBA" if "transparency" in image.info else "RGB")
            frame.save(target, "PNG")
            return frame.size
