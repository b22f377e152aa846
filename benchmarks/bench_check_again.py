"""Check again from the pages: seconds from pressing the button to the words, for one photo, without a watcher
(the web app takes the lock and loads the engine itself) and through a running ``photoguard watch``.

    uv run python benchmarks/bench_check_again.py [--runs 3] [--size 960x640]

A home with Ada enrolled, one photo of Ada and Grace processed, Grace enrolled afterwards; each run
presses Check again on the photo (a real POST to the real app) and waits for the outcome file.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from facekit import jpeg_bytes, scene  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from test_pipeline import CSV_HEADER, write_reference_photos  # noqa: E402
from test_watch import Watch  # noqa: E402
from webhome import BASE, ORIGIN, PIN  # noqa: E402

from photoguard.flow import redo  # noqa: E402
from photoguard.flow.pipeline import Processor  # noqa: E402
from photoguard.store.db import connect  # noqa: E402
from photoguard.store.home import open_home  # noqa: E402
from photoguard.store.roster import sync_roster  # noqa: E402
from photoguard.web.app import create_app  # noqa: E402


def make_home(root: Path, width: int, height: int) -> tuple:
    home = open_home(root)
    write_reference_photos(home.enrol, "ada", "astronaut")
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\n", encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    face = max(120, width // 8)
    rgb, _ = scene(width, height, [("astronaut", face, width // 10, height // 4),
                                   ("hopper", face, width // 2, height // 4)], seed=3)
    (home.inbox / "picnic.jpg").write_bytes(jpeg_bytes(rgb))
    assert Processor(home, conn).process(home.inbox / "picnic.jpg").status == "cleared"
    write_reference_photos(home.enrol, "grace", "hopper")
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n", encoding="utf-8")
    sync_roster(home, conn)
    sha = conn.execute("SELECT sha256 FROM photos").fetchone()[0]
    conn.close()
    return home, sha


def press(client: TestClient, home, sha: str) -> tuple[float, str]:
    started = time.monotonic()
    r = client.post("/check-again", data={"photo": sha, "back": "/outbox"}, headers=ORIGIN)
    assert r.status_code == 303
    while True:
        got = redo.recent(home, limit=1)
        if got and got[0].state == "done" and not redo.pending(home):
            return time.monotonic() - started, got[0].words
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", default="960x640")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        home, sha = make_home(Path(tmp) / "home", width, height)
        client = TestClient(create_app(home), base_url=BASE, follow_redirects=False)
        client.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN)
        alone = []
        for _ in range(args.runs):
            seconds, words = press(client, home, sha)
            alone.append(seconds)
        print(f"no watcher ({args.size}): {', '.join(f'{s:.1f}' for s in alone)} s, median "
              f"{statistics.median(alone):.1f} s — {words}")
        w = Watch(home.root).wait_watching()
        try:
            watched = [press(client, home, sha)[0] for _ in range(args.runs)]
        finally:
            w.stop()
        print(f"through the watcher ({args.size}): {', '.join(f'{s:.1f}' for s in watched)} s, median "
              f"{statistics.median(watched):.1f} s")


if __name__ == "__main__":
    main()
