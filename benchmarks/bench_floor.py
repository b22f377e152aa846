"""The floor in real pixels: recall per face size (3, 12, 48 MP; 8 and 24 on request) and seconds per photo.

    uv run python benchmarks/bench_floor.py [--children ../shared/faces/children] [--sizes 3,12,48]
                                           [--scenes 1] [--widths 16,20,24,28,32,40,48,64] [--without-floor-pass]
                                           [--floor-face 12]

Each scene is ``samples/rocket-no-faces.jpg`` scaled up to the photo size, with children's faces pasted
in a grid at every width in ``--widths`` (face box from CenterFace on the child's own photo, pasted with
its surroundings). A face is found when a detected box has IoU >= 0.3 with it or contains its centre.
For each size the table says the search floor (the smallest face, in the photo's own pixels, that must
be found: ``floor_px``), the recall per face width, and the widest face left untouched as it is
published (scaled to ``outbox.max_side``): that must be at most ``UNRECOGNISABLE_PX``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from photoguard.engine.boxes import covers
from photoguard.engine.detect import UNRECOGNISABLE_PX, FaceDetector, floor_px, published_scale
from photoguard.photos.images import load_image
from photoguard.store.config import Settings

ROOT = Path(__file__).resolve().parents[1]
PHOTO_SIZES = {3: (2000, 1500), 8: (3264, 2448), 12: (4000, 3000), 24: (6000, 4000), 48: (8000, 6000)}


def child_patches(folder: Path, detector: FaceDetector, count: int) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Up to ``count`` (crop, face box in the crop) from children's photos with one clear face >= 64 px."""
    patches = []
    for path in sorted(folder.glob("*/*.[Jj][Pp][Gg]")):
        rgb = load_image(path).rgb
        faces = [f for f in detector.detect(rgb) if f.score >= 0.6 and f.width >= 64]
        if len(faces) != 1:
            continue
        f = faces[0]
        pad = f.width // 2
        x0, y0 = max(0, f.left - pad), max(0, f.top - pad)
        x1, y1 = min(rgb.shape[1], f.right + pad), min(rgb.shape[0], f.bottom + pad)
        patches.append((rgb[y0:y1, x0:x1].copy(), (f.left - x0, f.top - y0, f.right - x0, f.bottom - y0)))
        if len(patches) == count:
            break
    return patches


def scene(size: tuple[int, int], widths: list[int], patches: list, seed: int) -> tuple[np.ndarray, list]:
    """The backdrop at ``size`` with a grid of faces, each width repeated; returns (rgb, [(width, box)])."""
    W, H = size
    backdrop = load_image(ROOT / "samples" / "rocket-no-faces.jpg").rgb
    canvas = cv2.resize(backdrop, (W, H), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    cell = 2 * max(widths) + 24
    truth = []
    k = 0
    for gy in range(1, H // cell - 1):
        for gx in range(1, W // cell - 1):
            width = widths[k % len(widths)]
            crop, face = patches[int(rng.integers(len(patches)))]
            scale = width / (face[2] - face[0])
            small = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                               interpolation=cv2.INTER_AREA)
            fx, fy = round(face[0] * scale), round(face[1] * scale)
            h, w = small.shape[:2]
            x = gx * cell + int(rng.integers(0, max(1, cell - w)))
            y = gy * cell + int(rng.integers(0, max(1, cell - h)))
            canvas[y:y + h, x:x + w] = small
            truth.append((width, (x + fx, y + fy, x + fx + round((face[2] - face[0]) * scale),
                                  y + fy + round((face[3] - face[1]) * scale))))
            k += 1
    return canvas, truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", default=str(ROOT.parent / "shared" / "faces" / "children"))
    ap.add_argument("--sizes", default="3,12,48", help="photo sizes in MP: any of 3, 8, 12, 24 and 48")
    ap.add_argument("--scenes", type=int, default=1, help="scenes per size")
    ap.add_argument("--widths", default="16,20,24,28,32,40,48,64")
    ap.add_argument("--without-floor-pass", action="store_true",
                    help="search as before detect.min_face_px existed (photo shrunk to 1280 px only)")
    ap.add_argument("--floor-face", type=int, default=None,
                    help="the width (px) a face at the floor has in the floor pass (FaceDetector.FLOOR_FACE)")
    args = ap.parse_args()
    settings = Settings()
    widths = [int(w) for w in args.widths.split(",")]
    detector = FaceDetector(settings.detect_threshold, min_face_px=settings.detect_min_face_px,
                            max_side=settings.outbox_max_side)
    if args.floor_face:
        detector.FLOOR_FACE = args.floor_face
    if args.without_floor_pass:
        detector.floor_scale = lambda width, height: 0.0
    patches = child_patches(Path(args.children), detector, 24)
    print(f"{len(patches)} children's faces; widths {widths}", file=sys.stderr)
    print("| photo | floor px | " + " | ".join(f"{w} px" for w in widths) + " | widest untouched as published | s/photo |")
    print("|---|---|" + "---|" * len(widths) + "---|---|")
    for mp in (int(s) for s in args.sizes.split(",")):
        size = PHOTO_SIZES[mp]
        found = {w: 0 for w in widths}
        total = {w: 0 for w in widths}
        widest = 0.0
        seconds = []
        for s in range(args.scenes):
            rgb, truth = scene(size, widths, patches, seed=mp * 100 + s)
            start = time.perf_counter()
            boxes = [f.box for f in detector.detect(rgb)]
            seconds.append(time.perf_counter() - start)
            scale = published_scale(max(size), settings.outbox_max_side)
            for width, box in truth:
                total[width] += 1
                if any(covers(b, box) for b in boxes):
                    found[width] += 1
                else:
                    widest = max(widest, width * scale)
        floor = floor_px(max(size), settings.detect_min_face_px, settings.outbox_max_side)
        print(f"| {mp} MP {size[0]}×{size[1]} | {floor:.0f} | "
              + " | ".join(f"{found[w]}/{total[w]}" for w in widths)
              + f" | {widest:.1f} px{' (over ' + str(UNRECOGNISABLE_PX) + ')' if widest > UNRECOGNISABLE_PX else ''} | "
              + f"{sum(seconds) / len(seconds):.1f} |", flush=True)


if __name__ == "__main__":
    main()
