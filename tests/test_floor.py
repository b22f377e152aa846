"""The floor in real pixels: small faces in large photos are found and obscured, and every copy that
leaves PhotoGuard is at most outbox.max_side px long, so that a face too small to be found is too
small to recognise once published (issue 22, item 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from facekit import jpeg_bytes, scene
from PIL import Image
from test_pipeline import CSV_HEADER, FirstLookMisses, drop, make_enrolled_home, photo_of_both

from photoguard.engine.detect import floor_px
from photoguard.engine.boxes import covers
from photoguard.flow.pipeline import Processor
from photoguard.flow.recheck import recheck_outbox
from photoguard.flow.review import render_preview
from photoguard.flow.release import release
from photoguard.photos.shrink import shrink_to
from photoguard.store.config import ConfigError, load_settings
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster


def pixels(path_or_bytes) -> np.ndarray:
    source = path_or_bytes if isinstance(path_or_bytes, Path) else __import__("io").BytesIO(path_or_bytes)
    with Image.open(source) as im:
        return np.asarray(im.convert("RGB"))


def long_side(rgb: np.ndarray) -> int:
    return max(rgb.shape[:2])


def test_floor_settings_are_read_and_checked(tmp_path):
    assert (load_settings(tmp_path).detect_min_face_px, load_settings(tmp_path).outbox_max_side) == (20, 2048)
    (tmp_path / "photoguard.toml").write_text("[detect]\nmin_face_px = 16\n[outbox]\nmax_side = 1600\n")
    settings = load_settings(tmp_path)
    assert (settings.detect_min_face_px, settings.outbox_max_side) == (16, 1600)
    for bad in ("[detect]\nmin_face_px = 8\n", "[detect]\nmin_face_px = 200\n", "[detect]\nmin_face_px = 20.5\n",
                "[outbox]\nmax_side = 100\n", "[outbox]\nmax_side = \"big\"\n", "[outbox]\nmax_side = true\n"):
        (tmp_path / "photoguard.toml").write_text(bad)
        with pytest.raises(ConfigError, match="Fix or remove that line"):
            load_settings(tmp_path)


def test_the_floor_drops_where_a_photo_is_published_near_full_size():
    # A face under the floor must be at most 12 px once published.
    assert floor_px(2000, 20, 2048) == 12          # published as it is
    assert floor_px(4000, 20, 2048) == 20          # published at half size: 20 px -> 10 px
    assert floor_px(8000, 20, 2048) == 20
    assert floor_px(3000, 20, 2048) == pytest.approx(12 * 3000 / 2048)


def test_small_faces_in_a_large_photo_are_obscured_in_every_outbox_copy(tmp_path):
    # 24 MP with faces of 20-26 px: shrunk to 1280 px for the search they were 4-6 px, and
    # several of them were published untouched, clearly recognisable at full size.
    width, height = 6000, 4000
    names = ("astronaut", "hopper")
    faces = [(names[k % 2], 500 + (k % 6) * 900, 500 + (k // 6) * 1300, 20 + (k % 4) * 2) for k in range(18)]
    rgb, boxes = scene(width, height, faces, seed=5)
    home = open_home(tmp_path / "home")
    processor = Processor(home)
    result = processor.process(drop(home, "sports-day.jpg", jpeg_bytes(rgb, quality=95)))

    recorded = [f.box for f in result.faces]
    missed = [(fw, box) for (_, _, _, fw), box in zip(faces, boxes) if not any(covers(r, box) for r in recorded)]
    assert not missed, f"faces not found: {missed}"
    assert result.status == "cleared", result.reason
    as_published = shrink_to(rgb, 2048)
    scale = long_side(as_published) / width
    for channel, path in result.outputs.items():
        copy = pixels(Path(path))
        assert long_side(copy) <= 2048 and copy.shape == as_published.shape, channel
        for box in boxes:
            l, t, r, b = (int(v * scale) for v in box)
            r, b = max(r, l + 1), max(b, t + 1)
            change = np.abs(copy[t:b, l:r].astype(int) - as_published[t:b, l:r].astype(int)).mean()
            assert change > 10, f"{channel}: the face at {box} looks untouched ({change:.1f})"


@pytest.fixture(scope="module")
def small_outbox_home(tmp_path_factory) -> Path:
    """An enrolled home whose published copies are at most 512 px long (the photos are 960 px)."""
    root = make_enrolled_home(tmp_path_factory.mktemp("floor") / "home")
    (root / "photoguard.toml").write_text("[outbox]\nmax_side = 512\n", encoding="utf-8")
    return root


def test_every_copy_that_leaves_photoguard_is_at_most_outbox_max_side(small_outbox_home, tmp_path):
    root = tmp_path / "home"
    shutil.copytree(small_outbox_home, root)
    home = open_home(root)
    rgb, _ = photo_of_both(seed=31)
    # Processed: cleared straight to the outbox.
    processor = Processor(home)
    cleared = processor.process(drop(home, "party.jpg", jpeg_bytes(rgb)))
    assert cleared.status == "cleared", cleared.reason
    assert all(long_side(pixels(Path(p))) == 512 for p in cleared.outputs.values())
    # Re-made after a consent change.
    home.roster_csv.write_text(CSV_HEADER + "ada,Ada,yes,no,no,no,\ngrace,Grace,yes,yes,no,no,\n", encoding="utf-8")
    sync_roster(home, processor.conn)
    processor.reload_roster()
    remade = [c for c in recheck_outbox(processor) if c.action == "rerendered"]
    assert remade and all(long_side(pixels(root / c.path)) == 512 for c in remade)
    # Held for review: the review copy, the preview and the released files, which are the preview.
    held = Processor(home, processor.conn, detector=FirstLookMisses())
    other, _ = photo_of_both(seed=32)
    assert held.process(drop(home, "held.jpg", jpeg_bytes(other))).status == "review"
    assert long_side(pixels(home.review / "held.jpg")) == 512
    conn = connect(home.database)
    previews = {c: render_preview(home, conn, "held", c, processor=processor) for c in home.settings.channels}
    assert all(long_side(pixels(data)) == 512 for data in previews.values())
    released = release(home, conn, "held", processor=processor)
    for channel, path in released.files.items():
        assert path.read_bytes() == previews[channel], channel
    conn.close()
