"""Face engine benchmark: recall by face size on 12 MP scenes, by rotation, and detect+identify speed.

    uv run python benchmarks/bench_engine.py [--quick] [--json] [--shared ../shared/faces] [--rotations] [--coarse]

Scenes are 4000x3000 (or 3000x4000) backgrounds with public-domain face crops (tests/facekit.py)
pasted at known places, saved as JPEG with each of the 8 EXIF orientations and loaded back, so
the detector sees exactly what the pipeline sees. A face counts as found when a box has IoU >= 0.3
with it or contains its centre. With --shared, the labelled photos in ../shared/faces are checked too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import facekit  # noqa: E402

from photoguard.engine.boxes import turn_matrix  # noqa: E402
from photoguard.engine.detect import FaceDetector, _resize  # noqa: E402
from photoguard.engine.identify import Template, encode_faces, match_faces  # noqa: E402
from photoguard.evaluate.faces import covers, evaluate_detection, load_rgb, read_imglab  # noqa: E402
from photoguard.store.config import Settings  # noqa: E402

BUCKETS = [(24, 32), (32, 64), (64, 128), (128, 420)]
NAMES = ("astronaut", "hopper")


def varied_patch(rng: np.random.Generator, width: int, context: float = 1.0) -> facekit.Patch:
    name = NAMES[rng.integers(2)]
    patch = facekit.face_patch(name, width, context)
    rgb = patch.rgb.astype(np.float32)
    face = patch.face
    if rng.random() < 0.5:
        rgb = rgb[:, ::-1]
        w = rgb.shape[1]
        face = (w - face[2], face[1], w - face[0], face[3])
    gain, gamma = rng.uniform(0.6, 1.3), rng.uniform(0.7, 1.4)
    rgb = np.clip(255 * (rgb / 255) ** gamma * gain, 0, 255).astype(np.uint8)
    return facekit.Patch(np.ascontiguousarray(rgb), face)


def paste(canvas: np.ndarray, patch: facekit.Patch, x: int, y: int) -> tuple[int, int, int, int]:
    """Paste so the face's top-left lands at (x, y); returns the true face box."""
    fl, ft, fr, fb = patch.face
    px, py = x - fl, y - ft
    h, w = patch.rgb.shape[:2]
    H, W = canvas.shape[:2]
    sx0, sy0 = max(0, -px), max(0, -py)
    dx0, dy0, dx1, dy1 = max(0, px), max(0, py), min(W, px + w), min(H, py + h)
    canvas[dy0:dy1, dx0:dx1] = patch.rgb[sy0:sy0 + dy1 - dy0, sx0:sx0 + dx1 - dx0]
    return (x, y, x + fr - fl, y + fb - ft)


def grid_scene(seed: int, low: int, high: int, portrait: bool) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    W, H = (3000, 4000) if portrait else (4000, 3000)
    canvas = facekit.background(W, H, seed).copy()
    cell = int(high * 3.2) + 40
    boxes = []
    for gy in range(H // cell):
        for gx in range(W // cell):
            fw = int(rng.integers(low, high))
            patch = varied_patch(rng, fw)
            slack = cell - patch.rgb.shape[1]
            x = gx * cell + patch.face[0] + int(rng.integers(0, max(1, slack)))
            y = gy * cell + patch.face[1] + int(rng.integers(0, max(1, cell - patch.rgb.shape[0])))
            boxes.append(paste(canvas, patch, x, y))
    return canvas, boxes


def closeup_scene(seed: int, width: int) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    canvas = facekit.background(4000, 3000, seed).copy()
    patch = varied_patch(rng, width, context=0.3)
    x = int(rng.integers(0, max(1, 4000 - patch.rgb.shape[1]))) + patch.face[0]
    y = max(0, (3000 - patch.rgb.shape[0]) // 2) + patch.face[1]
    return canvas, [paste(canvas, patch, x, y)]


def roundtrip(rgb: np.ndarray, orientation: int, folder: Path, name: str) -> Path:
    path = folder / f"{name}.jpg"
    path.write_bytes(facekit.jpeg_bytes(rgb, orientation, quality=90))
    return path


def recall_part(detector: FaceDetector, scenes_per_bucket: int, folder: Path, log, min_faces: int = 100) -> dict:
    """Each bucket gets ``scenes_per_bucket`` scenes, more if needed to reach ``min_faces`` faces."""
    out = {}
    orientation = 0
    for low, high in BUCKETS:
        found = total = false = 0
        missed = []
        s = 0
        while s < scenes_per_bucket or total < min_faces:
            orientation = orientation % 8 + 1
            rgb, truth = grid_scene(1000 * low + s, low, high, portrait=s % 2 == 1)
            path = roundtrip(rgb, orientation, folder, f"b{low}_{s}")
            loaded = load_rgb(path)
            assert loaded.shape == rgb.shape, (loaded.shape, rgb.shape, orientation)
            boxes = [b.box for b in detector.detect(loaded)]
            for t in truth:
                hit = any(covers(b, t) for b in boxes)
                found += hit
                if not hit:
                    missed.append((s, orientation, t))
            false += sum(1 for b in boxes if not any(covers(b, t) for t in truth))
            total += len(truth)
            s += 1
        out[f"{low}-{high}"] = {"found": found, "faces": total, "recall": found / total, "false_boxes": false,
                                "scenes": s, "missed": missed[:10]}
        log(f"recall {low}-{high}px: {found}/{total} ({found / total:.1%}), {false} false boxes")
    found = total = 0
    for s, width in enumerate((1000, 1200, 1500, 1800, 2200, 2600)):
        orientation = s % 8 + 1
        rgb, truth = closeup_scene(7 + s, width)
        loaded = load_rgb(roundtrip(rgb, orientation, folder, f"close{s}"))
        boxes = [b.box for b in detector.detect(loaded)]
        found += any(covers(b, truth[0]) for b in boxes)
        total += 1
    out[">1000"] = {"found": found, "faces": total, "recall": found / total}
    log(f"recall >1000px close-ups: {found}/{total}")
    return out


def rotation_part(detector: FaceDetector, scenes_per_bucket: int, folder: Path, log,
                  turn_list: tuple[int, ...] = (0, 1, 2, 3)) -> dict:
    """Recall by size for the photo turned 0/90/180/270° in its pixels, with no orientation tag (a tablet
    held sideways or upside down), and the detection time per photo for each, medians."""
    out = {}
    for turns in turn_list:
        row, times = {}, []
        for low, high in BUCKETS:
            found = total = 0
            for s in range(scenes_per_bucket):
                rgb, truth = grid_scene(5000 * low + s, low, high, portrait=s % 2 == 1)
                h, w = rgb.shape[:2]
                m = turn_matrix(turns, w, h)
                turned = np.ascontiguousarray(np.rot90(rgb, turns))
                loaded = load_rgb(roundtrip(turned, 1, folder, f"r{turns}_{low}_{s}"))
                t0 = time.perf_counter()
                boxes = [b.box for b in detector.detect(loaded)]
                times.append(time.perf_counter() - t0)
                for t in truth:
                    (x0, y0), (x1, y1) = [(m @ [x, y, 1])[:2] for x, y in ((t[0], t[1]), (t[2], t[3]))]
                    tt = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
                    found += any(covers(b, tt) for b in boxes)
                    total += 1
            row[f"{low}-{high}"] = {"found": found, "faces": total, "recall": found / total}
        out[turns * 90] = {"recall": row, "detect_s": statistics.median(times)}
        log(f"turned {turns * 90:>3}°: " + ", ".join(f"{k}px {v['found']}/{v['faces']}" for k, v in row.items())
            + f"; detect median {statistics.median(times):.2f} s")
    return out


def coarse_part(detector: FaceDetector, log, sides=(640, 960, 1280), thresholds=(0.015, 0.003, 0.0005)) -> dict:
    """Could a cheap low-resolution pass find the candidates for a full-resolution look (coarse to fine)?
    For the grid scenes of 24-32 and 32-64 px faces (upright, as a turned pass sees them), the faces with a
    CenterFace peak inside their box at each long side and heat threshold, and how many peaks there are: a
    face without a peak would never be looked at again."""
    out = {}
    for low, high in BUCKETS[:2]:
        rgb, truth = grid_scene(5000 * low, low, high, portrait=False)
        long = max(rgb.shape[:2])
        for side in sides:
            scale = side / long
            small = _resize(rgb, scale)
            for threshold in thresholds:
                boxes, scores, _ = detector.centerface.run(small, threshold)
                centres = (boxes[:, :2] + boxes[:, 2:]) / 2 / scale
                hit = sum(bool(((centres[:, 0] >= t[0]) & (centres[:, 0] < t[2]) & (centres[:, 1] >= t[1])
                                & (centres[:, 1] < t[3])).any()) for t in truth)
                out[f"{low}-{high} px, {side} px, {threshold}"] = {"faces": len(truth), "with_peak": hit,
                                                                  "peaks": len(scores)}
                log(f"{low}-{high} px faces, searched at {side} px, heat >= {threshold}: "
                    f"{hit}/{len(truth)} faces have a peak ({len(scores)} peaks)")
        # Nor can the upright pass stand in for the turned ones: does it leave a peak on a face lying sideways?
        h, w = rgb.shape[:2]
        for turns in (1, 2):
            m = turn_matrix(turns, w, h)
            scale = 1280 / long
            boxes, scores, _ = detector.centerface.run(_resize(np.ascontiguousarray(np.rot90(rgb, turns)), scale),
                                                       0.015)
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2 / scale
            hit = 0
            for t in truth:
                (x0, y0), (x1, y1) = [(m @ [x, y, 1])[:2] for x, y in ((t[0], t[1]), (t[2], t[3]))]
                hit += bool(((centres[:, 0] >= min(x0, x1)) & (centres[:, 0] < max(x0, x1))
                             & (centres[:, 1] >= min(y0, y1)) & (centres[:, 1] < max(y0, y1))).any())
            out[f"{low}-{high} px, turned {turns * 90}, upright pass"] = {"faces": len(truth), "with_peak": hit}
            log(f"{low}-{high} px faces turned {turns * 90}°, the upright 1280 px pass, heat >= 0.015: "
                f"{hit}/{len(truth)} faces have a peak")
    return out


def speed_part(detector: FaceDetector, runs: int, folder: Path, log) -> dict:
    templates = []
    for name in NAMES:
        rgb = facekit.face_image(name)
        faces = detector.detect(rgb)
        best = max(faces, key=lambda f: f.width)
        templates.append(Template(name, encode_faces(rgb, [best])[0]))
    rng = np.random.default_rng(5)
    canvas = facekit.background(4000, 3000, 11).copy()
    for (x, y), fw in zip([(300, 400), (1300, 500), (2300, 600), (3000, 1700), (800, 1800)], (48, 90, 160, 260, 400)):
        paste(canvas, varied_patch(rng, fw), x, y)
    decode, engine, detect, counts = [], [], [], []
    for i in range(runs):
        path = roundtrip(canvas, 1 + i % 8, folder, f"speed{i}")
        t0 = time.perf_counter()
        rgb = load_rgb(path)
        t1 = time.perf_counter()
        boxes = detector.detect(rgb)
        t_det = time.perf_counter()
        encs = encode_faces(rgb, boxes, min_width=80)   # as the pipeline should: smaller faces are never identified
        match_faces(encs, [b.width for b in boxes], templates, threshold=Settings.match_similarity,
                    margin=Settings.match_margin, min_face_px=80)
        t2 = time.perf_counter()
        decode.append(t1 - t0)
        engine.append(t2 - t1)
        detect.append(t_det - t1)
        counts.append(len(boxes))
    med_d, med_e, med_det = statistics.median(decode), statistics.median(engine), statistics.median(detect)
    log(f"12 MP, 5 faces: decode {med_d:.3f} s, detect+identify {med_e:.3f} s (detect {med_det:.3f} s) "
        f"median of {runs} (ratio {med_e / med_d:.1f}x decode), faces found {counts}")
    return {"decode_s": med_d, "engine_s": med_e, "detect_s": med_det, "ratio": med_e / med_d,
            "faces_found": counts, "engine_all_s": engine}


def shared_part(detector: FaceDetector, shared: Path, log) -> dict:
    det = shared / "detection"
    labelled = read_imglab(det / "training.xml") + read_imglab(det / "testing.xml")
    extra = [det / "no_faces_dogs.jpg"] if (det / "no_faces_dogs.jpg").exists() else []
    rep = evaluate_detection(detector, labelled, extra)
    log(f"detection set: {rep.found}/{rep.faces} faces, {rep.false_boxes} false boxes, "
        f"boxes on photos without faces: {sum(len(r.false_boxes) for r in rep.extra)}")
    groups = {"two_people.jpg": 2, "kit_with_rose.jpg": 2, "obama_and_biden.jpg": 3, "six_people.jpg": 6}
    out = {"detection": {"found": rep.found, "faces": rep.faces, "false_boxes": rep.false_boxes,
                         "extra_boxes": [len(r.false_boxes) for r in rep.extra]}, "groups": {}}
    for name, n in groups.items():
        path = shared / "groups" / name
        if path.exists():
            boxes = detector.detect(load_rgb(path))
            out["groups"][name] = {"expected": n, "boxes": len(boxes),
                                   "boxes_list": [(b.box, round(b.score, 2), b.source) for b in boxes]}
            log(f"group {name}: {len(boxes)} boxes for {n} faces")
    child = shared / "groups" / "obama_and_biden.jpg"
    if child.exists():
        rgb = load_rgb(child)
        h, w = rgb.shape[:2]
        right = [b for b in detector.detect(rgb) if b.left > w * 0.75]
        out["groups"]["child_at_right_edge_found"] = bool(right)
        log(f"obama_and_biden child at the right edge found: {bool(right)} {[b.box for b in right]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer scenes and runs")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--shared", type=Path, default=None, help="../shared/faces, for the labelled photo checks")
    ap.add_argument("--skip-recall", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--rotations", action="store_true",
                    help="also recall by rotation (photo turned in its pixels, no orientation tag)")
    ap.add_argument("--upright-only", action="store_true",
                    help="search the photo only as it stands (no quarter turns), to compare")
    ap.add_argument("--turns", default="0,1,2,3", help="with --rotations: the quarter turns to check")
    ap.add_argument("--coarse", action="store_true",
                    help="also: which small faces a low-resolution pass leaves a peak for (coarse to fine)")
    ap.add_argument("--turned-side", type=int, default=None,
                    help="search the turned photo at this long side instead of the upright one's, to compare")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    detector = FaceDetector(quarter_turns=(0,)) if args.upright_only else FaceDetector(turned_side=args.turned_side)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_speed:
            result["speed"] = speed_part(detector, 5 if args.quick else 11, folder, log)
        if not args.skip_recall:
            result["recall"] = recall_part(detector, 4 if args.quick else 8, folder, log,
                                           min_faces=30 if args.quick else 100)
        if args.rotations:
            result["rotations"] = rotation_part(detector, 1 if args.quick else 2, folder, log,
                                                tuple(int(t) for t in args.turns.split(",")))
    if args.coarse:
        result["coarse"] = coarse_part(detector, log)
    if args.shared:
        result["shared"] = shared_part(detector, args.shared, log)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        log("")
        if "recall" in result:
            log(f"{'face width':>12} {'found':>7} {'faces':>7} {'recall':>8}")
            for k, v in result["recall"].items():
                log(f"{k:>12} {v['found']:>7} {v['faces']:>7} {v['recall']:>8.1%}")
        if "rotations" in result:
            log(f"{'turned':>8} " + " ".join(f"{f'{lo}-{hi}px':>12}" for lo, hi in BUCKETS) + f" {'detect s':>9}")
            for deg, v in result["rotations"].items():
                log(f"{deg:>7}° " + " ".join(f"{v['recall'][f'{lo}-{hi}']['recall']:>12.1%}" for lo, hi in BUCKETS)
                    + f" {v['detect_s']:>9.2f}")
        if "speed" in result:
            s = result["speed"]
            log(f"detect+identify 12 MP / 5 faces: median {s['engine_s']:.3f} s; decode {s['decode_s']:.3f} s; "
                f"ratio {s['ratio']:.1f}")


if __name__ == "__main__":
    main()
