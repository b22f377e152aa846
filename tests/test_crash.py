"""`photoguard process` killed part-way, several times, then run again: nothing lost, nothing twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from facekit import jpeg_bytes, scene

from photoguard.store.db import connect
from photoguard.store.home import open_home

CHANNELS = ("facebook", "instagram", "twitter")


def run_process(root: Path, kill_after: float | None) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-m", "photoguard", "process", "--home", str(root), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    if kill_after is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
        return proc.returncode
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def test_killed_runs_lose_and_duplicate_nothing(tmp_path):
    home = open_home(tmp_path / "home")
    names = []
    for i in range(16):
        faces = [("astronaut", 60 + 7 * i, 50, 60)] if i % 2 else []
        rgb, _ = scene(480, 320, faces, seed=i)
        name = f"photo{i:02d}.jpg"
        (home.inbox / name).write_bytes(jpeg_bytes(rgb))
        names.append(name)
    (home.inbox / "broken.jpg").write_bytes(jpeg_bytes(scene(480, 320, [], seed=99)[0])[:900])
    names.append("broken.jpg")

    rng = random.Random(4)
    for _ in range(4):
        run_process(home.root, kill_after=rng.uniform(1.5, 4.0))
    run_process(home.root, kill_after=None)

    # Every photo is in exactly one place.
    for channel in CHANNELS:
        outs = sorted(p.name for p in home.outbox_for(channel).iterdir())
        assert not [n for n in outs if n.startswith(".") or n.endswith(".tmp")], outs  # no partial files
        assert outs == sorted(n for n in names if n != "broken.jpg"), outs             # each once
    archived = sorted(p.name.split("_", 1)[1] for p in home.archive.rglob("*.jpg"))  # <sha12>_<name>
    assert archived == sorted(n for n in names if n != "broken.jpg")
    assert sorted(p.name for p in home.failed.iterdir()) == ["broken.jpg", "broken.jpg.txt"]
    assert list(home.review.iterdir()) == []
    assert [p for p in home.inbox.rglob("*") if p.is_file()] == []
    conn = connect(home.database)
    states = conn.execute("SELECT state, outcome, COUNT(*) FROM photos GROUP BY state, outcome").fetchall()
    assert [tuple(r) for r in states] == [("done", "cleared", 16), ("done", "failed", 1)]
    assert conn.execute("SELECT COUNT(*) FROM outputs").fetchone()[0] == 16 * len(CHANNELS)
    # Every outbox file is a complete JPEG.
    for path in home.outbox.rglob("*.jpg"):
        data = path.read_bytes()
        assert data[:2] == b"\xff\xd8" and data.rstrip(b"\x00")[-2:] == b"\xff\xd9", path
    assert not any((home.state / "staging").iterdir())
    os.sync()
