"""The fake server's photos are real images: Pillow decodes them as their extension says."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from inat_async.testing import ImageFactory, build_dataset
from inat_async.testing.data import media_type

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF"}


@pytest.mark.parametrize("size", ["square", "small", "medium", "large", "original"])
def test_every_photo_decodes_with_its_type_and_dimensions(size: str) -> None:
    dataset = build_dataset({"Apis mellifera": 20}, seed=11)
    factory = ImageFactory()
    kinds = set()
    for photo in dataset.photos():
        if photo.placeholder is not None:
            continue
        body = factory.render(photo, size)
        with Image.open(io.BytesIO(body)) as image:
            image.load()
            assert image.format == FORMATS[media_type(photo.extension)]
            assert image.size == factory.dimensions(photo, size)
        # Padded to the realistic length the server announces for this photo.
        assert len(body) >= factory.length(photo.id, size)
        if size != "original":  # a flat 2048 px JPEG alone can outgrow the default length
            assert len(body) <= factory.length(photo.id, size) + 4
        kinds.add(image.format)
    assert kinds == {"JPEG", "PNG", "GIF"}


def test_bodies_are_deterministic_and_differ_per_photo() -> None:
    dataset = build_dataset({"Apis mellifera": 10}, seed=11)
    photos = [p for p in dataset.photos() if p.placeholder is None][:6]
    first = [ImageFactory().render(p, "medium") for p in photos]
    again = [ImageFactory().render(p, "medium") for p in photos]
    assert first == again
    assert len(set(first)) == len(first)


def test_scaled_bodies_stay_decodable() -> None:
    dataset = build_dataset({"Apis mellifera": 10}, seed=11)
    photo = next(p for p in dataset.photos() if p.placeholder is None)
    body = ImageFactory(scale=100).render(photo, "medium")
    assert len(body) > 500_000  # padding spans many 64 KB JPEG comment segments
    with Image.open(io.BytesIO(body)) as image:
        image.load()


def test_placeholder_is_a_png() -> None:
    with Image.open(io.BytesIO(ImageFactory().placeholder("/www/assets/x.png"))) as image:
        assert image.format == "PNG"
        assert image.size == (75, 75)
