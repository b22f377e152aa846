"""How much of a picture a second look restricted to "where the rendering differs" would still have to search.

    uv run python benchmarks/bench_second_look.py [--photos 10]

1. CenterFace's reach: a 16 px block of the 1280x960 input is blacked out and the outputs (heat map,
   box sizes, offsets, landmarks) compared with the untouched input's; the rows and columns of
   outputs that changed at all give how far a change reaches (its receptive field's radius, R).
2. To be the same as the whole second look, a restricted one must recompute every output within R
   of a changed pixel, and each of those outputs needs its own R of true context: a crop of the
   changed area grown by 2R (at the main pass's scale; the 320 px pass sees the whole picture
   anyway). For the benchmark's photos (bench_process.make_photos: 4000x3000, 5 faces, the two
   renderings the pipeline makes), this prints the share of the main pass's input such crops cover.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_process import make_photos  # noqa: E402


def reach(cf, side: tuple[int, int] = (1280, 960)) -> int:
    """Input pixels from a changed block to the farthest output that changed."""
    w, h = side
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3)).astype(np.uint8), (0, 0), 3).astype(np.float32)
    y0, x0, size = h // 2, w // 2, 16

    def outputs(a: np.ndarray) -> list[np.ndarray]:
        cf.net.setInput(np.ascontiguousarray(a.transpose(2, 0, 1))[None])
        return cf.net.forward(cf.outputs)

    before = outputs(img)
    changed = img.copy()
    changed[y0:y0 + size, x0:x0 + size] = 0
    after = outputs(changed)
    radius = 0
    for a, b in zip(before, after):
        d = np.abs(a - b).max(axis=(0, 1))
        ys, xs = np.nonzero(d > 0)
        s = cf.STRIDE
        radius = max(radius, y0 - ys.min() * s, (ys.max() + 1) * s - (y0 + size),
                     x0 - xs.min() * s, (xs.max() + 1) * s - (x0 + size))
    return int(radius)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10)
    args = parser.parse_args()

    from photoguard.engine.detect import FaceDetector
    from photoguard.engine.obscure import obscure_face
    from photoguard.photos.images import load_image
    from photoguard.store.config import Settings

    detector = FaceDetector(threads=1)
    radius = reach(detector.centerface)
    print(f"CenterFace at 1280x960: a change reaches outputs {radius} px away (input pixels)")
    settings = Settings()
    shares = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in make_photos(Path(tmp), args.photos):
            rgb = load_image(path).rgb
            h, w = rgb.shape[:2]
            base = min(1.0, detector.base_side / max(h, w))
            bw, bh = round(w * base), round(h * base)
            faces = detector.detect(rgb)
            # The pipeline's two renderings of these photos: the 3 smallest faces obscured, or all but the biggest.
            order = sorted(range(len(faces)), key=lambda i: -faces[i].width)
            for keep in (set(order[:2]), set(order[:1])):
                out = rgb.copy()
                for i, f in enumerate(faces):
                    if i not in keep:
                        obscure_face(out, f, method=settings.obscure_method, grow=settings.obscure_grow,
                                     rng=np.random.default_rng(i))
                diff = np.any(out != rgb, axis=2)
                ys, xs = np.nonzero(diff)
                if not len(ys):
                    shares.append(0.0)
                    continue
                x0 = max(0, xs.min() * base - 2 * radius)
                x1 = min(bw, (xs.max() + 1) * base + 2 * radius)
                y0 = max(0, ys.min() * base - 2 * radius)
                y1 = min(bh, (ys.max() + 1) * base + 2 * radius)
                shares.append((x1 - x0) * (y1 - y0) / (bw * bh))
    print(f"{len(shares)} renderings of {args.photos} photos: a restricted main pass would search "
          f"{statistics.median(shares):.0%} of the picture (median; min {min(shares):.0%}, max {max(shares):.0%})")


if __name__ == "__main__":
    main()
