"""A face in a photo turned without an orientation tag, recognised as in the upright photo?

    uv run python benchmarks/bench_turned_identity.py ../shared/faces/children [--every 4]

For every ``--every``-th photo, the main face (>= 80 px) is encoded upright; then the photo is turned a
quarter, a half and three quarters (np.rot90, as a tablet held sideways or upside down saves it) and
detected and encoded again. Prints, per turn, the median cosine similarity to the upright encoding and the
share at 0.6 or more (PhotoGuard's default match.similarity), with the encoder's landmarks as before
(always the upright search's, even for a face lying on its side) and as now (a close look with the face
turned upright when its eyes are not above its mouth).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from photoguard.engine.detect import FaceDetector  # noqa: E402
from photoguard.engine.embed import FaceEncoder, plausible  # noqa: E402
from photoguard.evaluate.faces import load_rgb, person_photos  # noqa: E402


def upright_search_landmarks(self, rgb, face):
    """The encoder's landmarks before: the upright search's whenever they look plausible."""
    if plausible(face.landmarks, face.box):
        return face.landmarks
    found = self._look_again(rgb, face.box)
    return found if plausible(found, face.box) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--every", type=int, default=4)
    args = ap.parse_args()
    detector, now = FaceDetector(), FaceEncoder()
    before = FaceEncoder()
    before.landmarks = upright_search_landmarks.__get__(before)
    photos = [p for ps in person_photos(args.folder).values() for p in ps][::args.every]
    scores: dict[str, dict[int, list[float]]] = {"before": {1: [], 2: [], 3: []}, "now": {1: [], 2: [], 3: []}}
    for path in photos:
        rgb = np.ascontiguousarray(load_rgb(path))
        faces = detector.detect(rgb)
        main_face = max(faces, key=lambda f: f.width * f.height) if faces else None
        if main_face is None or main_face.width < 80:
            continue
        upright = now.encode(rgb, [main_face])[0]
        if upright is None:
            continue
        for turns in (1, 2, 3):
            turned = np.ascontiguousarray(np.rot90(rgb, turns))
            found = detector.detect(turned)
            if not found:
                continue
            face = max(found, key=lambda f: f.width * f.height)
            for name, encoder in (("before", before), ("now", now)):
                e = encoder.encode(turned, [face])[0]
                scores[name][turns].append(-1.0 if e is None else float(e @ upright))
    for name, by_turn in scores.items():
        print(f"{name:<7}" + "   ".join(f"{90 * t}°: median {np.median(v):.3f}, >= 0.6 for "
                                         f"{np.mean(np.array(v) >= 0.6):.0%} of {len(v)}" for t, v in by_turn.items()))


if __name__ == "__main__":
    main()
