"""Where a photo's time goes: cProfile over ``Processor.process`` on bench_process's 12 MP photos.

    uv run python benchmarks/profile_process.py [--photos 3] [--top 10] [--out FILE]

One process, one thread for OpenCV (as a pool worker runs), a fresh home with two enrolled children.
The first photo is processed unprofiled (models load, caches warm); the next ``--photos`` are profiled.
Prints the top functions by cumulative time and by own time, and the wall seconds per photo.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_process import make_photos, setup_home  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=3)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads (a pool worker uses 1)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    args = parser.parse_args()

    from photoguard.flow.batch import open_processor
    from photoguard.store.home import open_home

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        photos = make_photos(tmp_path / "photos", args.photos + 1)
        home_root = tmp_path / "home"
        setup_home(home_root, [])
        processor = open_processor(open_home(home_root), echo=lambda _: None)
        processor._threads = args.threads
        import cv2

        cv2.setNumThreads(args.threads)
        inbox = home_root / "inbox"
        for p in photos:
            shutil.copy(p, inbox / p.name)
        today = date.today()
        processor.process(inbox / photos[0].name, today)   # warm-up, not profiled
        profile = cProfile.Profile()
        walls = []
        for p in photos[1:]:
            t = time.perf_counter()
            profile.enable()
            result = processor.process(inbox / p.name, today)
            profile.disable()
            walls.append(time.perf_counter() - t)
            print(f"{p.name}: {result.status}, {result.face_summary()}, {walls[-1]:.2f}s", file=sys.stderr)

    report = io.StringIO()
    report.write(f"{len(walls)} photos, 4000x3000, 5 faces; wall s/photo: {[round(w, 2) for w in walls]}\n")
    report.write(stages(profile, len(walls)))
    for key, title in (("cumulative", "by cumulative time"), ("tottime", "by own time")):
        report.write(f"\n--- top {args.top} {title} (seconds over {len(walls)} photos) ---\n")
        stats = pstats.Stats(profile, stream=report)
        stats.sort_stats(key).print_stats(args.top)
    text = report.getvalue()
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


# The stages of one photo, by the function that does each (cumulative time; some include others: the second
# look's detection is in "second look", not in "detection"; the floor pass's zoomed looks are in both its line
# and "zoomed looks"; the second look's float searches are in "float searches" too).
STAGES = [
    ("snapshot (copy, hash, fsync)", "intake.py", "take_snapshot"),
    ("decode + turn upright", "images.py", "load_image"),
    ("detection (every pass)", "detect.py", "detect"),
    ("  of it: floor pass (int8 tiles, looks)", "floor.py", "_floor_pass"),
    ("  of it: turned searches (int8)", "detect.py", "_cf"),
    ("  float searches (also 2nd look's)", "detect.py", "_float_pass"),
    ("  zoomed looks at faint peaks (all)", "detect.py", "_verify"),
    ("  float looks at int8 finds", "detect.py", "_look"),
    ("  HOG", "detect.py", "_hog_pass"),
    ("identify (SFace)", "pipeline.py", "identify"),
    ("render (obscure)", "pipeline.py", "render"),
    ("second look", "second_look.py", "second_look"),
    ("shrink for the outbox", "pipeline.py", "published"),
    ("staged files (encode, write, fsync)", "save.py", "save_stripped_jpeg"),
    ("  of it: JPEG encode + strip check", "save.py", "encode_stripped_jpeg"),
    ("publish (link, archive, audit)", "pipeline.py", "_finish_publishing"),
    ("CenterFace network (within the above)", "onnxruntime_inference_collection.py", "run"),
]


def stages(profile: cProfile.Profile, photos: int) -> str:
    """Seconds per photo in each stage (cumulative, as the profiler counts them)."""
    stats = pstats.Stats(profile).stats
    lines = ["\n--- seconds per photo by stage ---\n"]
    for label, file, func in STAGES:
        total = sum(v[3] for (f, _, name), v in stats.items() if f.endswith(file) and name == func)
        lines.append(f"{label:<40} {total / max(photos, 1):6.3f}\n")
    return "".join(lines)


if __name__ == "__main__":
    main()
