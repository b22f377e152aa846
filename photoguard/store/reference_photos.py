"""A child's reference photos in enrol/<id>/: which files are there and whether each is good enough to learn the
child's face from (one clear, sharp face of a fair size).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photoguard.photos.images import PHOTO_SUFFIXES, sha256_file

if TYPE_CHECKING:
    from photoguard.engine.detect import FaceDetector

IGNORED_FILES = {"thumbs.db", "desktop.ini"}


LINKED_PHOTO = ("a link to a file elsewhere, not a photo in the folder: copy the photo itself into the "
                "child's folder and delete the link")


MIN_GOOD_PHOTOS = 3


# In a reference photo, another face at least this fraction of the largest face's width is a rival.
RIVAL_FACE_RATIO = 0.4


# Sharpness = variance of the Laplacian of the face (grey, SHARPNESS_WIDTH px wide, fixed contrast).
# Measured on the facekit faces (astronaut, hopper; faces 90-450 px, JPEG q60, brightness 0.6-1.4):
# sharp 148-1060; Gaussian blur sigma 1.0 (in 128 px-face units) 37-230, sigma 1.5 16-56, sigma 2.5
# 6-22. Blur of sigma 1.5 already moves the encoding 0.19-0.25 (match threshold 0.45), 2.5 by ~0.3-0.37.
# 35 rejects sigma >= 1.5 on the smooth face and >= 2.5 on the textured one, 4x below the sharpest.
SHARPNESS_WIDTH = 128


MIN_SHARPNESS = 35.0


def _check_rules(settings) -> str:
    """Changes when the rules for a good reference photo change: rejected photos are then checked again."""
    return (f"min_face_px={settings.min_face_px};sharpness={MIN_SHARPNESS};rival={RIVAL_FACE_RATIO};"
            f"threshold={settings.detect_threshold};model={current_model()}")


def child_folder(enrol: Path, child_id: str) -> Path:
    """enrol/<id>/, also when the folder's name differs in case (Amy vs amy, as typed in Excel)."""
    exact = enrol / child_id
    try:
        if exact.is_dir() or not enrol.is_dir():
            return exact
        for entry in enrol.iterdir():
            if entry.is_dir() and entry.name.lower() == child_id.lower():
                return entry
    except OSError:   # a name no folder can have (too long for the file system): there is no such folder
        pass
    return exact


def _photo_files(folder: Path) -> list[Path]:
    """The files in a child's folder, links to files included (so that they are listed and refused)."""
    try:
        if not folder.is_dir():
            return []
    except OSError:
        return []
    return sorted(p for p in folder.iterdir()
                  if (p.is_file() or (p.is_symlink() and not p.is_dir()))
                  and not p.name.startswith(".") and p.name.lower() not in IGNORED_FILES)


def _is_link(path: Path) -> bool:
    """``path`` or its child folder is a symbolic link: it may lead anywhere on the computer."""
    return path.is_symlink() or path.parent.is_symlink()


def _fingerprint(path: Path) -> str:
    """The photo's sha256; for a link, of where it points (a link's target is never read)."""
    if _is_link(path):
        return hashlib.sha256(b"link:" + os.fsencode(os.readlink(path) if path.is_symlink() else path)).hexdigest()
    return sha256_file(path)


def sharpness(rgb: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Variance of the Laplacian of the face, grey, resized to SHARPNESS_WIDTH px and normalised to a
    fixed contrast, so a dark or a large photo scores like a bright or small one."""
    import cv2

    left, top, right, bottom = box
    crop = rgb[max(0, top):bottom, max(0, left):right]
    if crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    scale = SHARPNESS_WIDTH / grey.shape[1]
    size = (SHARPNESS_WIDTH, max(1, round(grey.shape[0] * scale)))
    grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC).astype(np.float64)
    grey = (grey - grey.mean()) / max(grey.std(), 1.0) * 50.0
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


SECOND_FACE = "a second face"   # how a rejection for another face begins (``enrol --accept-largest`` re-checks them)


def rival_words(rivals: list, width: int, height: int) -> str:
    """"a second face, top right, at 58 % confidence: ..." — where the other faces are, never pixels."""
    from photoguard.photos.places import where_in_photo

    rivals = sorted(rivals, key=lambda f: -f.width)
    places = [f"{where_in_photo(f.box, width, height)}, at {round(float(f.score) * 100)} % confidence" for f in rivals]
    what = f"{SECOND_FACE}, {places[0]}"
    if len(places) > 1:
        what += f" (and {len(places) - 1} more: " + "; ".join(places[1:]) + ")"
    return (f"{what}: use a photo of this child alone, or if the other face is a poster or a picture, "
            f"not a person, {_ACCEPT_LARGEST_COMMAND}")


_ACCEPT_LARGEST_COMMAND = "run `photoguard enrol --accept-largest` to use the largest face"


def reason_on_page(reason: str | None) -> str:
    """A reference photo's rejection as the web page says it: the page has a button where the command
    line has ``--accept-largest``."""
    return (reason or "").replace(_ACCEPT_LARGEST_COMMAND, "use the button below to take the largest face")


def check_photo(path: Path, detector: FaceDetector, min_face_px: int,
                accept_largest: bool = False) -> tuple[np.ndarray | None, str | None]:
    """(encoding, None) for a usable reference photo, else (None, why not and what to do).

    ``accept_largest``: the manager has looked at the photo and says the other faces are not children
    (a poster, a picture on the wall): the largest face is taken as the child's."""
    from photoguard.engine.identify import encode_faces
    from photoguard.photos.images import ImageError, load_image

    if _is_link(path):
        return None, LINKED_PHOTO
    if path.suffix.lower() not in PHOTO_SUFFIXES:
        return None, "not a JPEG, PNG or HEIC photo: remove it from the folder"
    try:
        rgb = load_image(path).rgb
    except ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # one odd file must not stop the enrolment of every other child
        return None, f"cannot read the photo ({type(exc).__name__}: {exc}): replace it with a JPEG, PNG or HEIC photo"
    faces = detector.detect(rgb)
    if not faces:
        return None, "no face found: use a photo where the child's face is clearly visible"
    face = max(faces, key=lambda f: f.width)
    # The detector's threshold is low on purpose (recall first), so a badge or a pattern can give
    # a small extra box. Only a face big enough to be mistaken for the child's counts as a second face.
    rivals = [f for f in faces if f is not face and f.width >= face.width * RIVAL_FACE_RATIO]
    if rivals and not accept_largest:
        return None, rival_words(rivals, rgb.shape[1], rgb.shape[0])
    if face.width < min_face_px:
        return None, f"face only {face.width} px wide, needs at least {min_face_px} px: use a closer photo"
    sharp = sharpness(rgb, face.box)
    if sharp < MIN_SHARPNESS:
        return None, f"too blurry (sharpness {sharp:.0f}, needs {MIN_SHARPNESS:.0f}): use a sharper photo"
    encoding = encode_faces(rgb, [face])[0]
    if encoding is None:
        return None, "face could not be measured (turned away or covered?): use a photo facing the camera"
    return encoding, None


def _accepts_largest(accept_largest: bool | frozenset[str], rel: str) -> bool:
    return accept_largest is True or (isinstance(accept_largest, frozenset) and rel in accept_largest)


def current_model() -> str:
    """The embedding model templates must come from to be compared (name and model file hash)."""
    from photoguard.engine.sface import model_id

    return model_id()
