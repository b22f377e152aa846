"""A real home for the web tests: Ada and Grace enrolled from public-domain faces, one photo of both
cleared to every outbox, one held for review (a face found only on the second look)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facekit import face_patch, jpeg_bytes, scene
from photoguard.db import connect
from photoguard.detect import FaceDetector
from photoguard.home import Home, open_home
from photoguard.pipeline import Processor
from photoguard.roster import sync_roster

PIN = "246810"
BASE = "http://127.0.0.1:8470"
ORIGIN = {"origin": BASE}
CSV = "id,name,face_matching,facebook,instagram,twitter,expires\nada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\n"
ADA_AT = (140, 180, 170)
GRACE_AT = (620, 200, 170)


class FirstLookMisses(FaceDetector):
    """A real detector that misses the right-most face on its first look at each photo."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def detect(self, rgb):
        faces = super().detect(rgb)
        self.looks += 1
        if self.looks == 1:
            return [f for f in faces if f.left < rgb.shape[1] // 2]
        return faces


def reference_photos(folder: Path, face: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (width, context, gain) in enumerate([(150, 0.8, 1.0), (190, 0.6, 1.1), (170, 1.0, 0.9)]):
        rgb = face_patch(face, width, context).rgb.astype(np.float32) * gain
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / f"ref{i}.jpg", quality=92)


def photo_of_both(seed: int = 1):
    rgb, boxes = scene(960, 640, [("astronaut", *ADA_AT), ("hopper", *GRACE_AT)], seed=seed)
    return rgb, {"ada": boxes[0], "grace": boxes[1]}


@dataclass
class WebHome:
    home: Home
    cleared_sha: str
    held_sha: str
    held_rgb: np.ndarray


def build(root: Path) -> None:
    home = open_home(root)
    reference_photos(home.enrol / "ada", "astronaut")
    reference_photos(home.enrol / "grace", "hopper")
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
