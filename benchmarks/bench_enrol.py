"""Enrolment benchmark: time per reference photo, and re-sync of a 30-child roster with nothing changed.

    uv run python benchmarks/bench_enrol.py [--children 30] [--photos 3] [--large 3]

Reference photos are facekit face crops (astronaut / hopper with varied scale, brightness, flip),
saved as JPEG (~300 px). ``--large`` adds that many 4032x3024 phone-size JPEGs to the first child to
time a realistic photo. Goal: re-sync with nothing changed < 2 s (no detector is loaded for it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import facekit  # noqa: E402

from photoguard.store import db  # noqa: E402
from photoguard.store.home import open_home  # noqa: E402
from photoguard.store.roster import sync_roster  # noqa: E402


def build(root: Path, children: int, photos: int, large: int) -> tuple:
    home = open_home(root)
    lines = ["id,name,face_matching,facebook,instagram,twitter,expires"]
    for c in range(children):
        cid = f"child-{c:02d}"
        lines.append(f"{cid},Child {c},yes,yes,{'yes' if c % 2 else 'no'},yes,2030-08-31")
        folder = home.enrol / cid
        folder.mkdir()
        name = "astronaut" if c % 2 == 0 else "hopper"
        for p in range(photos):
            patch = facekit.face_patch(name, 100 + 20 * p + c % 7, context=0.6 + 0.1 * (p % 3)).rgb
            img = ImageEnhance.Brightness(Image.fromarray(patch)).enhance(0.8 + 0.1 * ((c + p) % 5))
            if (c + p) % 2:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            (folder / f"photo-{p}.jpg").write_bytes(facekit.jpeg_bytes(np.asarray(img), quality=90))
    for p in range(large):
        rgb, _ = facekit.scene(4032, 3024, [("astronaut", 1500 + 100 * p, 900, 500)], seed=p)
        (home.enrol / "child-00" / f"phone-{p}.jpg").write_bytes(facekit.jpeg_bytes(rgb, orientation=6, quality=90))
    home.roster_csv.write_text("\n".join(lines) + "\n")
    return home


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--children", type=int, default=30)
    ap.add_argument("--photos", type=int, default=3)
    ap.add_argument("--large", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = build(Path(tmp) / "home", args.children, args.photos, args.large)
        conn = db.connect(home.database)
        times: dict[str, float] = {}
        last = [time.perf_counter()]

        def progress(i: int, total: int, rel: str) -> None:
            now = time.perf_counter()
            if i > 1:
                times[prev[0]] = now - last[0]
            prev[0], last[0] = rel, now

        prev = [""]
        t0 = time.perf_counter()
        first = sync_roster(home, conn, progress=progress)
        total = time.perf_counter() - t0
        times[prev[0]] = time.perf_counter() - last[0]
        small = [t for rel, t in times.items() if "/photo-" in rel][1:]  # the first includes loading the detector
        large = [t for rel, t in times.items() if "/phone-" in rel]
        accepted = sum(len(s.accepted) for s in first.children)
        print(f"first sync: {first.photos_checked} photos ({accepted} accepted) in {total:.1f} s")
        print(f"  per ~300 px photo: median {statistics.median(small):.3f} s, max {max(small):.3f} s")
        if large:
            print(f"  per 4032x3024 photo: median {statistics.median(large):.3f} s, max {max(large):.3f} s")
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            again = sync_roster(home, conn)
            runs.append(time.perf_counter() - t0)
            assert again.photos_checked == 0 and not again.changes
        print(f"re-sync, nothing changed ({args.children} children, {again.photos_unchanged} photos): "
              f"median {statistics.median(runs) * 1000:.0f} ms, max {max(runs) * 1000:.0f} ms  (goal < 2000 ms)")
        text = home.roster_csv.read_text().replace("child-03,Child 3,yes", "child-03,Child 3,no")
        home.roster_csv.write_text(text)
        t0 = time.perf_counter()
        withdrawn = sync_roster(home, conn)
        print(f"re-sync with one consent withdrawn (erase + scrub): {(time.perf_counter() - t0) * 1000:.0f} ms, "
              f"{withdrawn.templates_erased} templates erased, reduced={sorted(withdrawn.reduced)}")


if __name__ == "__main__":
    main()
