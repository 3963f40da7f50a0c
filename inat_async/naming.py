"""Safe file and folder names from untrusted text.

Species names come from the user's list; logins, license codes and extensions come
from the API. None of them may choose where a file lands, so each is reduced to one
plain ASCII path component: only ``[A-Za-z0-9._-]``, never empty, never ``.`` or
``..``, no leading dot or dash, short, and not a Windows device name. The mapping is
idempotent (a safe name maps to itself) but deliberately lossy: uniqueness of photo
files comes from the observation id and photo position, which always end the name.

>>> photo_file_name("Apis mellifera", "Steve", "cc-by-nc-nd", 6093, 3, "jpg")
'Apis-mellifera_Steve_cc-by-nc-nd_6093_3.jpg'
"""

from __future__ import annotations

import re
import unicodedata

_FALLBACK = "unknown"
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_DISALLOWED = re.compile(r"[^A-Za-z0-9._-]")
_DASH_RUNS = re.compile(r"-{2,}")
# Letters that NFKD does not decompose into ASCII but that have a usual transliteration.
# "×" is the hybrid sign of botanical names (Quercus × bebbiana): botanists write "x".
_TRANSLITERATE = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ı": "i",
        "×": "x",
    }
)
# Device names that Windows refuses as a file's base name, whatever the extension.
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
)

# Budgets for the fields of a photo file name. Real values are far shorter (iNaturalist
# logins have at most 40 characters); the caps only bound hostile input.
_SPECIES_BYTES = 80
_LOGIN_BYTES = 40
_LICENSE_BYTES = 16
_EXT_BYTES = 8
# Ids above this could not be stored in SQLite either; it also bounds the name length.
_MAX_ID = 2**63 - 1
#: Upper bound of :func:`photo_file_name`'s length: it leaves 55 bytes of the usual
#: 255-byte limit for a temporary suffix (``.part`` files written next to the target).
MAX_PHOTO_NAME_BYTES = 200


def _clean(text: str, space: str, max_bytes: int) -> str:
    """The sanitising core, without the Windows device-name rule."""
    if not text.isascii():
        # (ASCII text is its own transliteration and NFKD form, and has no combining
        # marks: skipping this keeps the result and saves most of a photo name's cost.)
        text = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
        # Dropping the combining marks NFKD split off folds accents: "é" -> "e".
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    # Filter only after normalising: NFKD turns e.g. the fullwidth solidus into "/".
    text = _DISALLOWED.sub("-", space.join(text.split()))
    text = _DASH_RUNS.sub("-", text).lstrip(".-")
    # Windows silently drops trailing dots, which would merge "a." into "a".
    text = text[:max_bytes].rstrip(".")
    return text or _FALLBACK[:max_bytes]


def safe_component(text: str, *, space: str = "-", max_bytes: int = 80) -> str:
    """One safe path component made from any text.

    Accents are folded to ASCII, whitespace runs become ``space``, any other character
    outside ``[A-Za-z0-9._-]`` becomes ``-``; the result is never empty, never starts
    with a dot or dash and is at most ``max_bytes`` long (it is ASCII, so bytes equal
    characters). A Windows device name such as ``CON`` gets a leading ``_``.

    >>> safe_component("Benjamin Bohémier")
    'Benjamin-Bohemier'
    >>> safe_component("../../etc/passwd")
    'etc-passwd'
    """
    if len(space) > 1 or _DISALLOWED.search(space):
        raise ValueError(f"space must be one character of [A-Za-z0-9._-] or empty: {space!r}")
    if not 1 <= max_bytes <= 255:
        raise ValueError(f"max_bytes must be between 1 and 255, got {max_bytes}")
    result = _clean(text, space, max_bytes)
    if result.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        # A leading "_" can never form a device name, so the result stays idempotent.
        result = ("_" + result)[:max_bytes].rstrip(".")
    return result


def species_dir_name(name: str) -> str:
    """``"Apis mellifera"`` -> ``"Apis_mellifera"``: the stem of a species' folder and CSVs."""
    return safe_component(name, space="_", max_bytes=_SPECIES_BYTES)


def species_file_stem(name: str) -> str:
    """``"Apis mellifera"`` -> ``"Apis-mellifera"``: how photo file names start."""
    return safe_component(name, space="-", max_bytes=_SPECIES_BYTES)


def _field(text: str, max_bytes: int) -> str:
    # "_" separates the fields of a photo name; keeping it out of the license and the
    # extension lets a reader split the name from the right without ambiguity.
    return _clean(text, "-", max_bytes).replace("_", "-")


def photo_file_name(
    species: str,
    login: str | None,
    license_code: str | None,
    observation_id: int | str,
    position: int,
    ext: str | None = None,
) -> str:
    """``<Genus-species>_<login>_<license>_<observation id>_<position>.<ext>``.

    As in the original script, with ``unknown`` for a missing login, ``none`` for a
    missing license (all rights reserved) and ``jpg`` for a missing extension. The
    observation id and position come last and are plain digits (the id is a lower-case
    uuid for Open Data observations, which have no number), so two different photos
    never share a name whatever the other fields hold. At most
    :data:`MAX_PHOTO_NAME_BYTES` bytes.

    >>> photo_file_name("Apis mellifera", None, None, 6093, 0, ".JPEG")
    'Apis-mellifera_unknown_none_6093_0.jpeg'
    """
    if isinstance(observation_id, str):
        if not _UUID.match(observation_id):
            raise ValueError(f"observation_id must be a uuid or an integer, got {observation_id!r}")
        observation_id = observation_id.lower()
    numbers = [("position", position)]
    if not isinstance(observation_id, str):
        numbers.insert(0, ("observation_id", observation_id))
    for label, number in numbers:
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= _MAX_ID:
            raise ValueError(f"{label} must be an integer between 0 and 2**63-1, got {number!r}")
    # The login is a middle field, so Windows device names cannot arise: no "_" prefix,
    # which keeps names identical to the original script's for logins such as "con".
    user = _clean(login or _FALLBACK, "-", _LOGIN_BYTES)
    license_part = _field((license_code or "none").lower(), _LICENSE_BYTES)
    suffix = re.sub(r"[^a-z0-9]", "", (ext or "").lower())[:_EXT_BYTES] or "jpg"
    return (
        f"{species_file_stem(species)}_{user}_{license_part}_{observation_id}_{position}.{suffix}"
    )
