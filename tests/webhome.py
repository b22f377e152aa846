"""A real home for the web tests: Ada and Grace enrolled from public-domain faces, one photo of both
cleared to every outbox, one held for review (a face found only on the second look)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from facekit import jpeg_bytes
from test_pipeline import FirstLookMisses, photo_of_both, write_reference_photos

from photoguard.flow.pipeline import Processor
from photoguard.store.db import connect
from photoguard.store.home import Home, open_home
from photoguard.store.roster import sync_roster

PIN = "246810"
BASE = "http://127.0.0.1:8470"
ORIGIN = {"origin": BASE}
CSV = "id,name,face_matching,facebook,instagram,twitter,expires\nada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n"


@dataclass
class WebHome:
    home: Home
    cleared_sha: str
    held_sha: str
    held_rgb: np.ndarray


def build(root: Path) -> None:
    home = open_home(root)
    write_reference_photos(home.enrol, "ada", "astronaut")
    write_reference_photos(home.enrol, "grace", "hopper")
    home.roster_csv.write_text(CSV, encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    conn.close()
    rgb, _ = photo_of_both(seed=3)
    (home.inbox / "picnic.jpg").write_bytes(jpeg_bytes(rgb))
    assert Processor(home).process(home.inbox / "picnic.jpg").status == "cleared"
    rgb, _ = photo_of_both(seed=10)
    (home.inbox / "missed.jpg").write_bytes(jpeg_bytes(rgb))
    assert Processor(home, detector=FirstLookMisses()).process(home.inbox / "missed.jpg").status == "review"


def copy(template: Path, target: Path) -> WebHome:
    shutil.copytree(template, target)
    home = open_home(target)
    conn = connect(home.database)
    rows = {r["source"]: r["sha256"] for r in conn.execute("SELECT source, sha256 FROM photos")}
    conn.close()
    rgb, _ = photo_of_both(seed=10)
    return WebHome(home, rows["picnic.jpg"], rows["missed.jpg"], rgb)
