"""The detector searching in int8 (the default) against the all-float detector, in one run: the same faces, the
same landmarks, the same identities?

    uv run python benchmarks/bench_int8.py [--shared ../shared/faces] [--children ../shared/faces/children]
                                          [--threads 1]

1. ``--shared``: the annotated detection photos, the group photos and the repository's samples, the two
   detectors alternated photo by photo: seconds per photo, labelled faces found, faces found by one detector
   only, and for the faces both found (IoU >= 0.5) how far apart their boxes and landmarks are (pixels);
2. ``--grid``: bench_engine's 12 MP speed scene and its grid scenes of 24-32 and 32-64 px faces (upright and
   turned 90 degrees, no tag), the detectors alternated: seconds, faces found, boxes the same;
3. ``--children``: every photo of ``evaluate identity``'s folder detected and encoded with each detector
   (alternated), the faces compared one by one (same box? landmarks apart? embedding cosine), then
   ``photoguard evaluate identity`` run on each detector's faces: its numbers should be the same.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from photoguard.engine.boxes import covers, iou  # noqa: E402
from photoguard.engine.detect import FaceDetector  # noqa: E402
from photoguard.engine.identify import encode_faces  # noqa: E402
from photoguard.evaluate import faces as evaluate_faces  # noqa: E402
from photoguard.evaluate.faces import EncodedPhoto, load_rgb, read_imglab  # noqa: E402


def pair(a, b):
    """Faces of ``a`` and ``b`` that are the same face (best IoU >= 0.5), and those left over on each side."""
    pairs, used = [], set()
    for i, x in enumerate(a):
        j = max(range(len(b)), key=lambda j: iou(x.box, b[j].box), default=None)
        if j is not None and j not in used and iou(x.box, b[j].box) >= 0.5:
            pairs.append((i, j))
            used.add(j)
    return pairs, len(a) - len(pairs), len(b) - len(used)


def apart(x, y) -> float:
    if x.landmarks is None or y.landmarks is None:
        return float("inf") if (x.landmarks is None) != (y.landmarks is None) else 0.0
    return float(np.abs(np.asarray(x.landmarks) - np.asarray(y.landmarks)).max())


def detection_part(dets: dict[str, FaceDetector], shared: Path) -> None:
    det_dir = shared / "detection"
    labelled = read_imglab(det_dir / "training.xml") + read_imglab(det_dir / "testing.xml")
    photos = [*labelled, *[(p, []) for p in sorted((shared / "groups").glob("*.jpg"))],
              *[(p, []) for p in sorted((ROOT / "samples").glob("*.jpg"))]]
    seconds = {k: [] for k in dets}
    found = {k: 0 for k in dets}
    marks, boxes, only, same_photos, described = [], [], [0, 0], 0, 0
    for path, truth in photos:
        rgb = load_rgb(path)
        faces = {}
        for k, det in dets.items():
            start = time.perf_counter()
            faces[k] = det.detect(rgb)
            seconds[k].append(time.perf_counter() - start)
            found[k] += sum(any(covers(f.box, t) for f in faces[k]) for t in truth)
        a, b = faces["int8"], faces["float"]
        pairs, only_a, only_b = pair(a, b)
        only[0] += only_a
        only[1] += only_b
        same_photos += [f.box for f in a] == [f.box for f in b]
        for i, j in pairs:
            if min(b[j].width, b[j].height) >= 8:
                described += 1
                marks.append(apart(a[i], b[j]))
                boxes.append(float(np.abs(np.subtract(a[i].box, b[j].box)).max()))
        gone = [f.box for f in b if not any(iou(f.box, x.box) >= 0.5 for x in a)]
        new = [f.box for f in a if not any(iou(f.box, x.box) >= 0.5 for x in b)]
        print(f"{path.name}: float {len(b)} faces, int8 {len(a)}; float only {gone}, int8 only {new}; "
              f"s float {seconds['float'][-1]:.2f} int8 {seconds['int8'][-1]:.2f}", flush=True)
    faces_total = sum(len(t) for _, t in labelled)
    m = np.array(marks)
    m[m < 1e-6] = 0.0   # (the same landmarks through a different chain of affine maps: ~1e-13 px)
    finite = m[np.isfinite(m)]
    print(f"\n{len(photos)} photos: labelled faces found float {found['float']}/{faces_total}, "
          f"int8 {found['int8']}/{faces_total}; faces float only {only[1]}, int8 only {only[0]}; "
          f"photos with the very same boxes {same_photos}/{len(photos)}")
    print(f"faces both found, >= 8 px ({described}): landmarks apart (px) median {np.median(finite):.3g}, "
          f"max {finite.max():.3g}, exactly equal {(m == 0).sum()}, "
          f"one side without landmarks {(~np.isfinite(m)).sum()}; "
          f"box edges apart (px) median {statistics.median(boxes):.3g}, max {max(boxes):.3g}")
    print("seconds per photo, median: " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in seconds.items())
          + "; total: " + ", ".join(f"{k} {sum(v):.1f}" for k, v in seconds.items()))


def grid_part(dets: dict[str, FaceDetector], scenes: int) -> None:
    from bench_quantise import grid_scenes

    photos = [(label, rgb, truth or []) for label, rgb, truth in grid_scenes(scenes)]
    seconds = {k: [] for k in dets}
    for label, rgb, truth in photos:
        row, boxes = [], {}
        for k, det in dets.items():
            start = time.perf_counter()
            boxes[k] = det.detect(rgb)
            seconds[k].append(time.perf_counter() - start)
            hits = sum(any(covers(b.box, t) for b in boxes[k]) for t in truth)
            row.append(f"{k} {seconds[k][-1]:.2f} s, {hits}/{len(truth)}")
        pairs, only_a, only_b = pair(boxes["int8"], boxes["float"])
        worst = max((apart(boxes["int8"][i], boxes["float"][j]) for i, j in pairs), default=0.0)
        same = [b.box for b in boxes["int8"]] == [b.box for b in boxes["float"]]
        print(f"{label}: " + "; ".join(row) + f"; same boxes {same}, "
              f"float only {only_b}, int8 only {only_a}, landmarks apart at most {worst:.2g} px", flush=True)
    print("median s/photo: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in seconds.items())
          + f" (int8/float {statistics.median(seconds['int8']) / statistics.median(seconds['float']):.2f})")


def identity_part(dets: dict[str, FaceDetector], children: Path) -> None:
    from photoguard.cli import main as cli

    encoded: dict[str, list[EncodedPhoto]] = {k: [] for k in dets}
    diffs = []
    for person, paths in evaluate_faces.person_photos(children).items():
        for path in paths:
            rgb = load_rgb(path)
            for k, det in dets.items():
                faces = det.detect(rgb)
                encoded[k].append(EncodedPhoto(person, path, faces, encode_faces(rgb, faces)))
            a, b = encoded["int8"][-1], encoded["float"][-1]
            pairs, only_a, only_b = pair(a.faces, b.faces)
            for i, j in pairs:
                ea, eb = a.encodings[i], b.encodings[j]
                cos = float(ea @ eb) if ea is not None and eb is not None else (1.0 if ea is eb else float("nan"))
                # (landmarks through a different chain of affine maps differ by ~1e-13 px: the same)
                if a.faces[i].box != b.faces[j].box or apart(a.faces[i], b.faces[j]) > 1e-6 or not cos > 1 - 1e-9:
                    diffs.append((path.name, b.faces[j].box, a.faces[i].box, apart(a.faces[i], b.faces[j]), cos))
            if only_a or only_b or a.main is not None and b.main is not None and \
                    a.faces[a.main].box != b.faces[b.main].box:
                print(f"{person}/{path.name}: float {[f.box for f in b.faces]} int8 {[f.box for f in a.faces]}")
    faces = sum(len(p.faces) for p in encoded["float"])
    print(f"\nof {faces} faces (float) in {len(encoded['float'])} photos, faces both found that differ "
          f"(photo, float box, "
          f"int8 box, landmarks apart px, embedding cosine): {len(diffs)}")
    for d in diffs:
        print("  ", d)
    for k in ("float", "int8"):
        print(f"\nphotoguard evaluate identity {children}, detector {k}:", flush=True)
        original = evaluate_faces.encode_folder
        evaluate_faces.encode_folder = lambda *args, k=k, **kw: encoded[k]
        try:
            cli(["evaluate", "identity", str(children)], standalone_mode=False)
        except SystemExit as exc:
            print(f"(exited {exc.code})")
        finally:
            evaluate_faces.encode_folder = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=None)
    ap.add_argument("--children", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", type=int, default=0, help="grid scenes per face size (0: none)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    dets = {"float": FaceDetector(int8=False), "int8": FaceDetector()}
    if args.shared:
        detection_part(dets, args.shared)
    if args.grid:
        grid_part(dets, args.grid)
    if args.children:
        identity_part(dets, args.children)


if __name__ == "__main__":
    main()
