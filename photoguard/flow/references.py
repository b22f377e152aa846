"""Reference photos added by the manager: stored re-encoded in enrol/<id>/, checked at once, in words.

Whether a photo is good enough is decided by ``roster.check_photo`` (the same rule ``enrol`` applies);
this module only adds what a person needs to fix a bad one: where the faces are, how big, how sharp.
"""

from __future__ import annotations

import io
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photoguard.photos.images import ImageError, load_image, load_image_bytes
from photoguard.photos.places import where_in_photo
from photoguard.photos.save import save_stripped_jpeg
from photoguard.photos.taken import camera_date, keep_camera_date
from photoguard.store.home import Home
from photoguard.store.reference_photos import (MIN_SHARPNESS, RIVAL_FACE_RATIO, SECOND_FACE, check_photo, child_folder,
                                               reason_on_page, sharpness)

MAX_UPLOAD_BYTES = 25 * 1024 * 1024


class ReferenceError(Exception):
    """The photo cannot be stored; the message says what to do."""


@dataclass
class Feedback:
    accepted: bool
    verdict: str                                    # the rule's own words (roster.check_photo)
    points: list[tuple[bool, str]] = field(default_factory=list)   # a checklist, in words
    reason: str | None = None                       # why not, as check_photo said it (None when accepted)

    @property
    def worth_keeping(self) -> bool:
        """Accepted, or refused only for a second face the manager may say is a poster ("use the largest")."""
        return self.accepted or (self.reason or "").startswith(SECOND_FACE)


class _Watching:
    """Passes detection through and remembers what was found, so the photo is looked at once."""

    def __init__(self, detector) -> None:
        self.detector = detector
        self.faces: list = []
        self.shape: tuple[int, ...] = (0, 0)
        self.rgb: np.ndarray | None = None

    def detect(self, rgb: np.ndarray):
        self.faces = self.detector.detect(rgb)
        self.shape, self.rgb = rgb.shape, rgb
        return self.faces


def feedback(path: Path, detector, min_face_px: int) -> Feedback:
    watching = _Watching(detector)
    encoding, reason = check_photo(path, watching, min_face_px)
    points: list[tuple[bool, str]] = []
    faces = sorted(watching.faces, key=lambda f: -f.width)
    h, w = watching.shape[:2]
    if watching.rgb is not None:
        if not faces:
            points.append((False, "No face found."))
        else:
            face = faces[0]
            points.append((True, f"A face found, {where_in_photo(face.box, w, h)}."))
            rivals = [f for f in faces[1:] if f.width >= face.width * RIVAL_FACE_RATIO]
            if rivals:
                for r in rivals:
                    points.append((False, f"A second face, {where_in_photo(r.box, w, h)}, "
                                          f"at {round(float(r.score) * 100)} % confidence. Use a photo of this child alone."))
            else:
                points.append((True, "Only one face."))
            big = face.width >= min_face_px
            points.append((big, f"Face {face.width} pixels wide" + ("." if big else f": needs at least {min_face_px}. "
                                                                                        "Use a closer photo.")))
            sharp = sharpness(watching.rgb, face.box)
            points.append((sharp >= MIN_SHARPNESS, "Sharp enough." if sharp >= MIN_SHARPNESS
                           else "Too blurry: use a sharper photo."))
    if encoding is not None:
        return Feedback(True, "Good reference photo: it will be used to recognise this child.", points)
    return Feedback(False, f"Not used: {reason_on_page(reason)}.", points, reason)


def store_upload(home: Home, child_id: str, data: bytes, original_name: str) -> Path:
    """Decode the upload and write it re-encoded (no metadata) into enrol/<id>/, owner-only."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ReferenceError(f"The photo is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Use a smaller copy.")
    try:
        loaded = load_image_bytes(data)
    except ImageError as exc:
        raise ReferenceError(f"This file cannot be used as a photo ({exc.reason}). Use a JPEG, PNG or HEIC photo.")
    folder = child_folder(home.enrol, child_id)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = _safe_stem(original_name)
    path = save_stripped_jpeg(loaded.rgb, folder, stem, quality=95)
    os.chmod(path, 0o600)
    # The copy has no metadata; the day it was taken still decides whether it is among her recent photos.
    keep_camera_date(path, camera_date(io.BytesIO(data)))
    return path


def _safe_stem(name: str) -> str:
    stem = Path(name or "photo").stem
    keep = "".join(ch if ch.isalnum() or ch in "-_ " else "-" for ch in stem).strip(" -.")[:60]
    return keep or "photo"


def remove_reference(home: Home, child_id: str, rel_path: str) -> None:
    """Delete one reference photo of the child (a path from the database, checked to be in their folder)."""
    folder = child_folder(home.enrol, child_id).resolve()
    target = (home.enrol / rel_path).resolve()
    if target.parent != folder or not target.is_file():
        raise ReferenceError("That photo is not one of this child's reference photos any more.")
    target.unlink()


# A reference photo needs some of the head around the face, as enrolment photos have.
LEARN_MARGIN = 0.6


def learn_from_face(home: Home, conn: sqlite3.Connection, photo_sha256: str, box: tuple[int, int, int, int],
                    child_id: str) -> Path:
    """Confirm and learn: cut the face the manager confirmed out of the archived original and store it as a
    reference photo of ``child_id`` (enrol/<id>/confirmed-<photo>-<n>.jpg). The next sync builds its
    template with the current engine, like any reference photo, and removing the file removes it.

    The caller checks that the face was confirmed and the child may have templates (roster's rule)."""
    row = conn.execute("SELECT source, archive_path FROM photos WHERE sha256 = ?", (photo_sha256,)).fetchone()
    if row is None or not row["archive_path"]:
        raise ReferenceError("The original of this photo is not in the archive any more, so the face cannot be learnt.")
    original = (home.root / row["archive_path"]).resolve()
    if not original.is_relative_to(home.archive.resolve()) or not original.is_file():
        raise ReferenceError("The original of this photo is not in the archive any more, so the face cannot be learnt.")
    image = load_image(original)
    if image.sha256 and image.sha256 != photo_sha256:
        raise ReferenceError("The archived original is not the photo that was processed; the face cannot be learnt.")
    h, w = image.rgb.shape[:2]
    left, top, right, bottom = box
    pad = int(max(right - left, bottom - top) * LEARN_MARGIN)
    crop = image.rgb[max(0, top - pad):min(h, bottom + pad), max(0, left - pad):min(w, right + pad)]
    if crop.size == 0:
        raise ReferenceError("That face is outside the photo.")
    folder = child_folder(home.enrol, child_id)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = save_stripped_jpeg(np.ascontiguousarray(crop), folder, f"confirmed-{_safe_stem(row['source'])}", quality=95)
    os.chmod(path, 0o600)
    return path
