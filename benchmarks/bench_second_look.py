"""The second look searched only around the obscured areas, against the whole picture searched again.

    uv run python benchmarks/bench_second_look.py [--shared ../shared/faces] [--photos 4]

A finished picture is the photo ``detect`` searched, but for its obscured areas, so the second look's main
CenterFace pass (``FaceDetector.detect_confident`` with ``changed``) searches only crops around them. Three parts:

1. CenterFace's reach: a block of 16, 64 and 128 px of the 1280 px input of samples/garden-group.jpg is
   blacked out, and the largest change of the heat map more than 16-192 px away from it is printed (every
   output moves a little up to 276 px away; what matters is how much: CONTEXT_PX is where it falls under 0.01);
2. how much of the main pass's input the crops cover (each obscured area grown by 2 x CONTEXT_PX), with
   every face found obscured, on the demo photos (samples/), the group and the annotated photos (``--shared``)
   and bench_process's 12 MP scenes;
3. the same renderings (every face obscured, and two random halves) searched both ways: the clear finds
   (score >= 0.5, as the second look) that are neither a known face nor inside an obscured area must be the
   same; for every find of 0.3 or more near an obscured area, the score difference; and the seconds.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_process import make_photos  # noqa: E402

from photoguard.engine.boxes import iou, same_face  # noqa: E402
from photoguard.engine.detect import FaceDetector  # noqa: E402
from photoguard.engine.obscure import obscure_face, obscure_mask, obscured_area  # noqa: E402
from photoguard.photos.images import load_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GROW = 1.3


def reach(detector: FaceDetector) -> None:
    rgb = load_image(ROOT / "samples" / "garden-group.jpg").rgb
    scale = 1280 / max(rgb.shape[:2])
    img = cv2.resize(rgb, (1280, round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    img = img[: img.shape[0] // 32 * 32].astype(np.float32)
    h, w = img.shape[:2]

    def heat(a: np.ndarray) -> np.ndarray:
        return detector.centerface.net.run(np.ascontiguousarray(a.transpose(2, 0, 1)[None]))[0][0, 0]

    before = heat(img)
    print("1. largest heat-map change farther than d px from a blacked-out block (1280 px input):")
    for size in (16, 64, 128):
        y0, x0 = h // 2 - size // 2, w // 2 - size // 2
        changed = img.copy()
        changed[y0:y0 + size, x0:x0 + size] = 0
        d = np.abs(heat(changed) - before)
        yy, xx = np.mgrid[0:d.shape[0], 0:d.shape[1]] * 4 + 2
        dist = np.maximum(np.maximum(y0 - yy, yy - (y0 + size)), np.maximum(x0 - xx, xx - (x0 + size))).clip(0)
        print(f"   block {size:3} px: " + "  ".join(f"d>{r}: {d[dist > r].max():.4f}" for r in (16, 32, 64, 96, 128, 192)))


def rendered(rgb: np.ndarray, faces: list, shown: list[bool]) -> tuple[np.ndarray, list]:
    out = rgb.copy()
    hidden = [f for f, keep in zip(faces, shown) if not keep]
    for i, f in enumerate(hidden):
        obscure_face(out, f, grow=GROW, rng=np.random.default_rng(i))
    return out, hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=None, help="../shared/faces: its groups/ and detection/")
    parser.add_argument("--photos", type=int, default=4, help="bench_process's 12 MP scenes")
    args = parser.parse_args()
    detector = FaceDetector(threads=1)
    cv2.setNumThreads(1)
    reach(detector)
    c = detector.CONTEXT_PX
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"demo": sorted((ROOT / "samples").glob("*.jpg")),
                "12 MP scenes": make_photos(Path(tmp), args.photos)}
        if args.shared:
            sets["groups"] = sorted((args.shared / "groups").glob("*.jp*g"))
            sets["annotated"] = sorted((args.shared / "detection").glob("*.jp*g"))
        print(f"2. share of the main pass's input searched, every face obscured (crops: areas grown by {2 * c} px):")
        whole_s, crops_s, differing, renders, score_diffs = [], [], 0, 0, []
        for name, paths in sets.items():
            shares = []
            for path in paths:
                rgb = load_image(path).rgb
                h, w = rgb.shape[:2]
                base = min(1.0, detector.base_side / max(h, w))
                faces = detector.detect(rgb)
                bw, bh = round(w * base), round(h * base)
                mask = np.zeros((bh, bw), bool)
                for f in faces:
                    if (a := obscured_area(rgb.shape, f, GROW)):
                        x0, y0 = max(0, int(a[0] * base) - 2 * c) // 32 * 32, max(0, int(a[1] * base) - 2 * c) // 32 * 32
                        mask[y0:int(np.ceil(a[3] * base)) + 2 * c, x0:int(np.ceil(a[2] * base)) + 2 * c] = True
                shares.append(mask.mean())
                rng = np.random.default_rng(0)
                for shown in [[False] * len(faces)] + [list(rng.random(len(faces)) < 0.5) for _ in range(2)]:
                    out, hidden = rendered(rgb, faces, shown)
                    changed = [a for f in hidden if (a := obscured_area(out.shape, f, GROW))]
                    t = time.perf_counter()
                    whole = detector.detect_confident(out, 0.3)
                    whole_s.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    crops = detector.detect_confident(out, 0.3, changed)
                    crops_s.append(time.perf_counter() - t)

                    def new(found):
                        centre = [(min(int((x.left + x.right) / 2), w - 1), min(int((x.top + x.bottom) / 2), h - 1))
                                  for x in found]
                        return sorted(x.box for x, (cx, cy) in zip(found, centre) if x.score >= 0.5
                                      and not any(same_face(x.box, f.box) for f in faces)
                                      and not any(obscure_mask(out.shape, f, GROW)[cy, cx] for f in hidden))
                    renders += 1
                    differing += new(whole) != new(crops)
                    r = c / base
                    for x in whole:
                        cx, cy = (x.left + x.right) / 2, (x.top + x.bottom) / 2
                        if any(a[0] - r <= cx < a[2] + r and a[1] - r <= cy < a[3] + r for a in changed):
                            best = max(crops, key=lambda y: iou(x.box, y.box), default=None)
                            score_diffs.append(abs(best.score - x.score) if best and iou(best.box, x.box) >= 0.5
                                               else x.score)
            print(f"   {name:13} {len(paths):2} photos: median {statistics.median(shares):.0%}, "
                  f"least {min(shares):.0%}, most {max(shares):.0%}")
    print(f"3. {renders} renderings: clear new finds differ in {differing}; "
          f"{len(score_diffs)} finds >= 0.3 near obscured areas, score difference median "
          f"{statistics.median(score_diffs):.4f}, largest {max(score_diffs):.4f}")
    print(f"   main pass + frame-filling pass, 1 thread: whole {statistics.median(whole_s):.3f} s, "
          f"crops {statistics.median(crops_s):.3f} s (median; {sum(crops_s) / sum(whole_s):.2f}x in all)")


if __name__ == "__main__":
    main()
