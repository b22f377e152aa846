"""A child's face changes fast: matching compares her reference photos of the last year, never fewer than two,
and the date comes from the photo itself. Pure rule, real files, a real SQLite roster, real `photoguard enrol`s."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date

import numpy as np
from facekit import face_patch, jpeg_bytes
from PIL import Image
from test_enrol import HEADER, bright, detector  # noqa: F401  (the module's detector fixture)

from photoguard.engine.identify import Template, recent_references
from photoguard.photos.taken import taken_on
from photoguard.store import db
from photoguard.store.home import open_home
from photoguard.store.roster import load_templates, sync_roster

TODAY = date(2026, 5, 10)


def ref(child: str, day: str | None, n: int) -> Template:
    return Template(child, np.full(128, float(n)), date.fromisoformat(day) if day else None)


def names(templates) -> list[tuple[str, int]]:
    return [(t.child_id, int(t.encoding[0])) for t in templates]


def test_references_of_the_last_year_and_never_fewer_than_two():
    templates = [ref("ada", "2024-01-01", 1), ref("ada", "2025-06-01", 2), ref("ada", "2025-09-01", 3),
                 ref("ben", "2023-01-01", 4), ref("ben", "2025-09-01", 5),
                 ref("cat", "2020-01-01", 6), ref("cat", None, 7), ref("cat", "2025-01-01", 8), ref("cat", "2021-01-01", 9)]
    # Ada's baby photo is more than a year older than her newest: no longer compared. Ben has one recent
    # photo: his two newest stay. A photo with no date counts as new (Cat's), so Cat's 2025 photo is
    # the newest dated one and her older ones go.
    assert names(recent_references(templates)) == [("ada", 2), ("ada", 3), ("ben", 4), ("ben", 5),
                                                   ("cat", 7), ("cat", 8)]
    assert names(recent_references([ref("dan", None, 1), ref("dan", None, 2)])) == [("dan", 1), ("dan", 2)]
    # Exactly a year before the newest is still within the year.
    assert names(recent_references([ref("eve", "2024-09-01", 1), ref("eve", "2025-09-01", 2),
                                    ref("eve", "2025-08-01", 3)])) == [("eve", 1), ("eve", 2), ("eve", 3)]


def photo_taken(path, rgb, day: str | None) -> None:
    exif = Image.Exif()
    if day:
        exif.get_ifd(0x8769)[36867] = f"{day.replace('-', ':')} 10:30:00"
    path.write_bytes(jpeg_bytes(rgb, exif=exif))


def test_the_date_is_the_cameras_else_the_files(tmp_path):
    rgb = face_patch("astronaut", 100).rgb
    photo_taken(tmp_path / "camera.jpg", rgb, "2024-05-01")
    assert taken_on(tmp_path / "camera.jpg", TODAY) == date(2024, 5, 1)
    for name, day in (("none.jpg", None), ("future.jpg", "2031-01-01"), ("silly.jpg", "1901-01-01")):
        photo_taken(tmp_path / name, rgb, day)
        stamp = time.mktime((2025, 3, 4, 12, 0, 0, 0, 0, -1))
        os.utime(tmp_path / name, (stamp, stamp))
        assert taken_on(tmp_path / name, TODAY) == date(2025, 3, 4), name
    (tmp_path / "not-a-photo.jpg").write_bytes(b"hello")
    assert taken_on(tmp_path / "not-a-photo.jpg", TODAY) <= TODAY


def test_a_baby_photo_stays_on_file_but_only_the_last_years_photos_are_compared(tmp_path, detector):  # noqa: F811
    home = open_home(tmp_path / "home")
    folder = home.enrol / "amy"
    folder.mkdir(parents=True)
    photo_taken(folder / "baby.jpg", face_patch("astronaut", 150, context=0.6).rgb, "2023-02-01")
    photo_taken(folder / "spring.jpg", bright(face_patch("astronaut", 120, context=0.7).rgb, 1.15), "2026-03-01")
    photo_taken(folder / "may.jpg", face_patch("astronaut", 130, context=0.5).rgb[:, ::-1], "2026-05-01")
    home.roster_csv.write_text(HEADER + "amy,Amy,yes,yes,yes,yes,\n")
    conn = db.connect(home.database)
    try:
        result = sync_roster(home, conn, today=TODAY, detector=detector)
        assert [c.templates for c in result.children] == [2]    # those compared now: the baby photo is not
        days = sorted(r[0] for r in conn.execute("SELECT taken_on FROM templates"))
        assert days == ["2023-02-01", "2026-03-01", "2026-05-01"]
        assert len(load_templates(conn, recent_only=False)) == 3
        assert len(load_templates(conn)) == 2      # the baby photo is not compared
        # Take the spring photo away: her two newest are compared again, the baby photo among them.
        (folder / "spring.jpg").unlink()
        sync_roster(home, conn, today=TODAY, detector=detector)
        assert len(load_templates(conn)) == 2
    finally:
        conn.close()


def test_two_enrolments_at_once_store_each_photo_once(tmp_path):
    """The Children page and the watcher may sync the roster at the same moment: each reference photo must
    still count once (a doubled template weighs that photo twice in the child's mean)."""
    home = open_home(tmp_path / "home")
    folder = home.enrol / "amy"
    folder.mkdir(parents=True)
    for i, width in enumerate((150, 130, 120, 140)):
        (folder / f"amy{i}.jpg").write_bytes(jpeg_bytes(bright(face_patch("astronaut", width, context=0.6).rgb,
                                                               0.9 + 0.1 * i)))
    home.roster_csv.write_text(HEADER + "amy,Amy,yes,yes,yes,yes,\n")
    db.connect(home.database).close()
    enrols = [subprocess.Popen([sys.executable, "-m", "photoguard", "enrol", "--home", str(home.root)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].decode() for p in enrols]
    assert all(p.returncode == 0 for p in enrols), outputs
    conn = db.connect(home.database)
    try:
        per_photo = conn.execute("SELECT photo_sha256, COUNT(*) FROM templates GROUP BY photo_sha256").fetchall()
        assert len(per_photo) == 4 and all(n == 1 for _, n in per_photo), [n for _, n in per_photo]
    finally:
        conn.close()


class RemovedWhileChecked:
    """The real detector; while it looks at the photo, the manager removes that photo on the Children page."""

    def __init__(self, detector, path):
        self.detector, self.path = detector, path

    def detect(self, rgb):
        self.path.unlink()
        return self.detector.detect(rgb)


def test_a_photo_removed_while_it_was_checked_leaves_no_template(tmp_path, detector):  # noqa: F811
    home = open_home(tmp_path / "home")
    folder = home.enrol / "amy"
    folder.mkdir(parents=True)
    photo = folder / "wrong-child.jpg"
    photo.write_bytes(jpeg_bytes(face_patch("astronaut", 150, context=0.6).rgb))
    home.roster_csv.write_text(HEADER + "amy,Amy,yes,yes,yes,yes,\n")
    conn = db.connect(home.database)
    try:
        sync_roster(home, conn, today=TODAY, detector=RemovedWhileChecked(detector, photo))
        assert conn.execute("SELECT COUNT(*) FROM templates").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM reference_photos").fetchone()[0] == 0
    finally:
        conn.close()
