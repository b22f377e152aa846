"""dlib's face descriptor network (the one face_recognition uses), run with numpy.

Same weights, same 128 numbers (to float rounding) as ``dlib.face_recognition_model_v1``, but
several times faster here: the dlib wheel we install has no BLAS, while numpy's matrix product
uses OpenBLAS (kept to one thread: on a busy machine BLAS threads fight the other workers and run
several times slower), and several faces go through the network as one batch.

The network (dlib's ``dlib_face_recognition_resnet_model_v1``): a 29-layer ResNet on a 150x150
aligned face chip; weights are read from the model file shipped by ``face_recognition_models``.
"""

from __future__ import annotations

import ctypes
import glob
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

# input_rgb_image_sized<150>: (pixel - mean) / 256
_MEAN = np.array([122.782, 117.001, 104.298], np.float32)
CHIP_SIZE = 150
CHIP_PADDING = 0.25
ENCODE_MAX_FACE_PX = 240
ENCODE_MIN_FACE_PX = 8


@cache
def _blas_thread_calls():
    """numpy's bundled OpenBLAS (set_num_threads, get_num_threads), or None if it cannot be found."""
    for path in glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    return setter, getter
        break
    return None


@contextmanager
def _one_blas_thread():
    """Run numpy's bundled OpenBLAS on one thread for a while (no-op if it cannot be found)."""
    calls = _blas_thread_calls()
    if calls is None:
        yield
        return
    setter, getter = calls
    before = getter()
    setter(1)
    try:
        yield
    finally:
        setter(before)


class FaceNetError(Exception):
    """The face descriptor model file is missing or not in the expected format."""


def model_paths() -> tuple[Path, Path]:
    """(5-point landmark model, descriptor network) shipped by face_recognition_models."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition_models as frm
    return Path(frm.pose_predictor_five_point_model_location()), Path(frm.face_recognition_model_location())


@dataclass
class _Conv:
    w: np.ndarray        # (C*kh*kw, O) for the matrix product
    b: np.ndarray        # (O,)
    k: int
    stride: int
    pad: int


class _Reader:
    """dlib's serialization: integers as a size/sign byte + little-endian bytes; tensors as raw float32."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def int(self) -> int:
        head = self.data[self.pos]
        n = head & 0x0F
        if n > 8 or head & 0x70:
            raise FaceNetError(f"unexpected byte {head:#x} at {self.pos} in the face model")
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -value if head & 0x80 else value

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise FaceNetError(f"unsupported tensor version {version} in the face model")
        shape = [self.int() for _ in range(4)]
        count = int(np.prod(shape))
        out = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return out.reshape(shape)


def _find_all(data: bytes, token: bytes) -> list[int]:
    out, start = [], 0
    while (i := data.find(token, start)) >= 0:
        out.append(i + len(token))
        start = i + 1
    return out


class FaceNet:
    """The descriptor network with weights loaded once; ``describe`` aligned 150x150 chips."""

    # (filters, first stride) of each residual block, input side first.
    BLOCKS = [(32, 1)] * 3 + [(64, 2)] + [(64, 1)] * 3 + [(128, 2)] + [(128, 1)] * 2 + [(256, 2)] + [(256, 1)] * 2 + [(256, 2)]

    def __init__(self, path: Path | None = None) -> None:
        path = path or model_paths()[1]
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise FaceNetError(f"cannot read the face model {path}: {exc.strerror}. Reinstall PhotoGuard.") from exc
        convs, affines = [], []
        for pos in _find_all(data, b"\x01\x05con_4"):
            r = _Reader(data, pos)
            params = r.tensor().ravel()
            filters, kh, kw, sy, sx, py, px = (r.int() for _ in range(7))
            if kh != kw or sy != sx or py != px:
                raise FaceNetError("unexpected convolution shape in the face model")
            n_in = (params.size - filters) // (filters * kh * kw)
            w = params[: filters * n_in * kh * kw].reshape(filters, n_in * kh * kw)
            convs.append(_Conv(np.ascontiguousarray(w.T), params[-filters:].copy(), kh, sy, py))
        for pos in _find_all(data, b"\x01\x07affine_"):
            params = _Reader(data, pos).tensor().ravel()
            half = params.size // 2
            affines.append((params[:half].copy(), params[half:].copy()))
        fc_pos = _find_all(data, b"\x01\x04fc_2")
        if len(convs) != 29 or len(affines) != 29 or len(fc_pos) != 1:
            raise FaceNetError(f"{path} is not dlib's face descriptor ResNet (found {len(convs)} convolutions).")
        r = _Reader(data, fc_pos[0])
        r.int(), r.int()   # num_outputs, num_inputs
        self.fc = r.tensor().reshape(256, 128)
        # Fold each affine (scale, shift) into the convolution before it.
        self.layers = []
        for conv, (gamma, beta) in zip(convs, affines):
            self.layers.append(_Conv(conv.w * gamma[None, :], conv.b * gamma + beta, conv.k, conv.stride, conv.pad))

    @staticmethod
    def _conv(x: np.ndarray, c: _Conv) -> np.ndarray:
        """x: (N, H, W, C) -> (N, H', W', O)."""
        if c.pad:
            x = np.pad(x, ((0, 0), (c.pad, c.pad), (c.pad, c.pad), (0, 0)))
        n, h, w, ch = x.shape
        oh, ow = (h - c.k) // c.stride + 1, (w - c.k) // c.stride + 1
        win = np.lib.stride_tricks.sliding_window_view(x, (c.k, c.k), axis=(1, 2))
        win = win[:, : (oh - 1) * c.stride + 1 : c.stride, : (ow - 1) * c.stride + 1 : c.stride]
        cols = win.reshape(n * oh * ow, ch * c.k * c.k)      # (C, kh, kw) order, like dlib's filters
        out = cols @ c.w
        out += c.b
        return out.reshape(n, oh, ow, -1)

    @staticmethod
    def _pool(x: np.ndarray, k: int, stride: int, op) -> np.ndarray:
        n, h, w, ch = x.shape
        oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
        win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
        win = win[:, : (oh - 1) * stride + 1 : stride, : (ow - 1) * stride + 1 : stride]
        return op(win, axis=(4, 5))

    @staticmethod
    def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """dlib's add_prev: sizes may differ; the missing part counts as zeros."""
        if a.shape == b.shape:
            return a + b
        shape = tuple(max(p, q) for p, q in zip(a.shape, b.shape))
        out = np.zeros(shape, np.float32)
        out[:, : a.shape[1], : a.shape[2], : a.shape[3]] += a
        out[:, : b.shape[1], : b.shape[2], : b.shape[3]] += b
        return out

    def describe(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB face chips -> (N, 128) float64 descriptors."""
        with _one_blas_thread():
            return self._forward(chips)

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        x = (chips.astype(np.float32) - _MEAN) / 256.0
        layers = iter(self.layers)
        x = np.maximum(self._conv(x, next(layers)), 0)
        x = self._pool(x, 3, 2, np.max)
        for filters, stride in self.BLOCKS:
            y = np.maximum(self._conv(x, next(layers)), 0)
            y = self._conv(y, next(layers))
            shortcut = self._pool(x, 2, 2, np.mean) if stride == 2 else x
            x = np.maximum(self._add(y, shortcut), 0)
        x = x.mean(axis=(1, 2))
        return (x @ self.fc).astype(np.float64)


class DlibEncoder:
    """dlib's 5-point landmarks and face descriptor (the models face_recognition uses), loaded once.

    PhotoGuard matched children with this before SFace; kept for measuring the two against each
    other (benchmarks/bench_identity.py), not used to decide anything.

    The descriptor network runs in numpy (``facenet.FaceNet``: same numbers, ~4x faster than the
    dlib wheel); if its model file cannot be read that way, dlib itself is used.
    """

    def __init__(self) -> None:
        import dlib

        landmarks, network = model_paths()
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(landmarks))
        self._net: FaceNet | None
        try:
            self._net = FaceNet(network)
            self._dlib_net = None
        except FaceNetError:
            self._net = None
            self._dlib_net = dlib.face_recognition_model_v1(str(network))

    def encode(self, rgb: np.ndarray, boxes, min_width: int = 0) -> list[np.ndarray | None]:
        h, w = rgb.shape[:2]
        chips: list[np.ndarray] = []
        where: list[int] = []
        for i, box in enumerate(boxes):
            bw, bh = box.right - box.left, box.bottom - box.top
            if min(bw, bh) < ENCODE_MIN_FACE_PX or bw < min_width:
                continue
            pad = int(max(bw, bh) * 0.5)
            x0, y0 = max(0, box.left - pad), max(0, box.top - pad)
            x1, y1 = min(w, box.right + pad), min(h, box.bottom + pad)
            crop = rgb[y0:y1, x0:x1]
            scale = min(1.0, ENCODE_MAX_FACE_PX / max(bw, bh))
            if scale < 1.0:
                size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
                crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
            crop = np.ascontiguousarray(crop)
            rect = self._dlib.rectangle(round((box.left - x0) * scale), round((box.top - y0) * scale),
                                        round((box.right - x0) * scale), round((box.bottom - y0) * scale))
            shape = self._landmarks(crop, rect)
            chips.append(np.asarray(self._dlib.get_face_chip(crop, shape, 150, 0.25)))
            where.append(i)
        out: list[np.ndarray | None] = [None] * len(boxes)
        if not chips:
            return out
        if self._net is not None:
            encodings = self._net.describe(np.stack(chips))
        else:
            encodings = np.array([self._dlib_net.compute_face_descriptor(c) for c in chips], dtype=np.float64)
        for i, enc in zip(where, encodings):
            out[i] = np.asarray(enc, dtype=np.float64)
        return out
