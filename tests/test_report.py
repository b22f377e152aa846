"""The manager's HTML report, built from a real SQLite database and real image files."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import stat
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from facekit import jpeg_bytes, scene
from PIL import Image

from photoguard.flow.report import SHOWN_COLOUR, gather_report
from photoguard.flow.report_page import build_report
from photoguard.photos.images import sha256_file
from photoguard.store import db
from photoguard.store.home import open_home

CHANNELS = ("facebook", "instagram", "twitter")
NASTY = '<script>alert("x")</script>&trip.jpg'


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def home_of(conn) -> Path:
    """The home folder of a database at <home>/.photoguard/photoguard.db."""
    return Path(conn.execute("PRAGMA database_list").fetchone()["file"]).parent.parent


def _add_photo(conn, sha, source, outcome, *, reason=None, archive=None, plan=None, faces=(), outputs=()):
    conn.execute(
        "INSERT INTO photos (sha256, source, state, outcome, reason, archive_path, received_at, finished_at, width, height, plan) "
        "VALUES (?, ?, 'done', ?, ?, ?, ?, ?, 600, 400, ?)",
        (sha, source, outcome, reason, archive, _now(), _now(), json.dumps(plan) if plan else None))
    for idx, (box, child, identity, actions) in enumerate(faces):
        conn.execute("INSERT INTO faces (photo_sha256, idx, box, score, child_id, distance, reason) VALUES (?,?,?,?,?,?,?)",
                     (sha, idx, json.dumps(box), 0.9, child, 0.2 if child else None, identity))
        for channel, (action, why) in zip(CHANNELS, actions):
            conn.execute("INSERT INTO face_actions (photo_sha256, face_idx, channel, action, reason) VALUES (?,?,?,?,?)",
                         (sha, idx, channel, action, why))
    for channel, path, removed in outputs:
        # As the pipeline records it: the hash of the file it put in the outbox.
        file_hash = sha256_file(home_of(conn) / path) if (home_of(conn) / path).exists() else None
        conn.execute("INSERT INTO outputs (photo_sha256, channel, path, file_sha256, created_at, removed_at) "
                     "VALUES (?,?,?,?,?,?)", (sha, channel, path, file_hash, _now(), removed))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    home = open_home(root)
    conn = db.connect(home.database)
    conn.execute("INSERT INTO children (id, name, face_matching, channels, updated_at) VALUES "
                 "('ada', 'Ada', 1, '{}', '2026-01-01'), ('grace', 'Grace', 1, '{}', '2026-01-01')")

    # A cleared photo, stored sideways (EXIF 6): boxes are in displayed pixels.
    rgb, boxes = scene(600, 400, [("astronaut", 60, 90, 110), ("hopper", 250, 80, 120), ("astronaut", 470, 260, 30)], seed=4)
    day = home.archive / date.today().isoformat()
    day.mkdir()
    (day / "painting.jpg").write_bytes(jpeg_bytes(rgb, 6))
    Image.fromarray(rgb).save(home.outbox_for("facebook") / "painting.jpg", quality=70)
    hidden = rgb.copy()
    for left, top, right, bottom in boxes[1:]:
        hidden[top:bottom, left:right] = 0
    Image.fromarray(hidden).save(home.outbox_for("instagram") / "painting.jpg", quality=70)
    _add_photo(conn, "a" * 64, "painting.jpg", "cleared", archive=f"archive/{date.today()}/painting.jpg",
               faces=[
                   (boxes[0], "ada", "matched", [("shown", f"consent for {c}") for c in CHANNELS]),
                   (boxes[1], "grace", "matched", [("shown", "consent for facebook"),
                                                   ("obscured", "no consent for instagram"),
                                                   ("obscured", "consent expired 2026-09-01")]),
                   (boxes[2], None, "too small to identify", [("obscured", "too small to identify")] * 3),
               ],
               outputs=[(c, f"outbox/{c}/painting.jpg", _now() if c == "twitter" else None) for c in CHANNELS])

    # Waiting for review, with a staff file name that is also HTML.
    rgb2, boxes2 = scene(500, 350, [("hopper", 200, 100, 120)], seed=5)
    (day / "nasty.jpg").write_bytes(jpeg_bytes(rgb2))
    Image.fromarray(rgb2).save(home.review / "nasty.jpg", quality=70)
    _add_photo(conn, "b" * 64, NASTY, "review", reason="a face was still recognisable after obscuring",
               archive=f"archive/{date.today()}/nasty.jpg",
               plan={"stem": "nasty", "files": {}, "published": {"review": "review/nasty.jpg"}},
               faces=[(boxes2[0], None, "no enrolled child close enough", [("obscured", "no enrolled child close enough")] * 3)])

    # A failed photo is only in the events (the journal forgets it so it can be dropped again).
    conn.execute("INSERT INTO events (at, kind, detail) VALUES (?, 'processed', ?)",
                 (_now(), "failed: broken.jpg: the file is not a complete photo (truncated); re-export it"))
    conn.execute("INSERT INTO events (at, kind, detail) VALUES (?, 'duplicate', ?)", (_now(), "copy.jpg = painting.jpg"))

    path = build_report(home, conn, date.today())
    yield home, conn, path, path.read_text(encoding="utf-8")
    conn.close()


def test_report_is_private_and_in_the_state_folder(report):
    home, _, path, _ = report
    assert path.parent == home.reports
    assert re.fullmatch(r"report-\d{4}-\d{2}-\d{2}(-\d{6})?\.html", path.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not any(home.outbox.rglob("*.html"))
    assert not list(home.reports.glob(".*tmp"))


def test_report_makes_no_network_references(report):
    page = report[3]
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    assert re.search(r"""(src|href)=["'](?!data:)""", page) is None
    assert "default-src 'none'" in page


def test_report_shows_totals_labels_and_reasons(report):
    page = report[3]
    for text in ("Ada", "Grace", "too small to identify", "unknown", "no consent for instagram",
                 "consent expired 2026-09-01", "no enrolled child close enough",
                 "a face was still recognisable after obscuring", "broken.jpg",
                 "the file is not a complete photo (truncated); re-export it", "removed from the outbox",
                 "waiting for your review", "cleared for sharing"):
        assert text in page, text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;trip.jpg" in page
    # Review first, then the failed list, then the cleared photos.
    assert page.index("Waiting for your review") < page.index("Could not be processed") < page.index("painting.jpg")


def test_report_inlines_thumbnails_with_faces_boxed(report):
    page = report[3]
    uris = re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    # cleared: original + facebook + instagram; review: original + review copy
    assert len(uris) == 5
    with Image.open(io.BytesIO(base64.b64decode(uris[0]))) as im:  # the review photo's original comes first
        assert max(im.size) <= 320
    originals = [u for u in uris if _has_colour(u, SHOWN_COLOUR)]
    assert originals, "the cleared photo's original should carry a green box around Ada"
    with Image.open(io.BytesIO(base64.b64decode(originals[0]))) as im:
        assert im.size == (320, 213)  # displayed (oriented) 600x400, not the stored 400x600


def _has_colour(uri: str, colour: tuple[int, int, int]) -> bool:
    with Image.open(io.BytesIO(base64.b64decode(uri))) as im:
        px = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    return bool((np.abs(px - np.array(colour)).sum(axis=1) < 60).sum() > 50)


def test_report_counts(report):
    home, conn, _, _ = report
    data = gather_report(home, conn, date.today())
    assert data.count("cleared") == 1 and data.count("review") == 1 and len(data.failed) == 1
    assert data.face_counts("facebook") == (2, 2)
    assert data.face_counts("twitter") == (1, 3)
    assert [ev.kind for ev in data.events] == ["duplicate"]


def test_a_second_report_does_not_overwrite_the_first(report):
    home, conn, path, page = report
    again = build_report(home, conn, date.today())
    assert again != path and path.read_text(encoding="utf-8") == page
    assert stat.S_IMODE(again.stat().st_mode) == 0o600
    again.unlink()


def test_report_on_an_empty_day(tmp_path):
    home = open_home(tmp_path)
    conn = db.connect(home.database)
    day = date.today() - timedelta(days=400)
    path = build_report(home, conn, day, day)
    page = path.read_text(encoding="utf-8")
    assert "No photos processed on" in page
    assert path.name == f"report-{day.isoformat()}.html"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


def test_report_renders_in_a_headless_browser(report, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine")
    path = report[2]
    png = tmp_path / "report.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1200,900",
           path.as_uri()]
    try:
        subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("Chromium did not finish in time")
    if not png.exists():
        pytest.skip("Chromium could not take a screenshot here")
    with Image.open(png) as im:
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.shape == (900, 1200)
    assert pixels.std() > 20  # not a blank page


def test_report_command(tmp_path):
    from click.testing import CliRunner

    from photoguard.cli import main
    from photoguard.store.starter import init_home

    init_home(tmp_path)
    result = CliRunner().invoke(main, ["report", "--home", str(tmp_path), "--since", "2020-01-01"])
    assert result.exit_code == 0, result.output
    path = tmp_path / ".photoguard" / "reports" / "report-2020-01-01.html"
    assert str(path) in result.output
    assert "No photos processed since" in path.read_text(encoding="utf-8")


def test_channels_that_got_the_same_picture_share_one_image(tmp_path):
    home = open_home(tmp_path)
    conn = db.connect(home.database)
    rgb, _ = scene(300, 200, [], seed=9)
    for channel in CHANNELS:
        Image.fromarray(rgb).save(home.outbox_for(channel) / "wall.jpg", quality=70)
    _add_photo(conn, "c" * 64, "wall.jpg", "cleared", outputs=[(c, f"outbox/{c}/wall.jpg", None) for c in CHANNELS])
    page = build_report(home, conn, date.today()).read_text(encoding="utf-8")
    assert "Shared on <b>facebook</b> &middot; <b>instagram</b> &middot; <b>twitter</b>" in page
    assert page.count("data:image/jpeg") == 1  # the original is gone from the archive: one image only
    assert "original no longer archived" in page
