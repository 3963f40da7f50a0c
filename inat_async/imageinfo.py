"""Conversion of a stored photo to PNG with Pillow, for exports whose loaders take no GIF.

A photo's pixel size is read where its bytes are checked, in the file hop of
:mod:`inat_async.photocheck` / :mod:`inat_async.fetch`, not here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image


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
