"""The smaller things a manager tripped on (issue 19 item 6), on a real home with the real pages and CLI."""

from __future__ import annotations

import os

from click.testing import CliRunner

import webhome
from photoguard.cli import main
from photoguard.store.db import connect
from photoguard.store.roster import sync_roster
from test_web_pages import client, fingerprint, post, web  # noqa: F401


def _second_held(web) -> str:
    """A second photo held for review, so there is a 'next' one."""
    from facekit import jpeg_bytes
    from photoguard.flow.pipeline import Processor
    from test_pipeline import FirstLookMisses

    rgb, _ = webhome.photo_of_both(seed=12)
    (web.home.inbox / "later.jpg").write_bytes(jpeg_bytes(rgb))
    result = Processor(web.home, detector=FirstLookMisses()).process(web.home.inbox / "later.jpg")
    assert result.status == "review"
    return result.sha256


def test_a_release_says_who_stays_obscured_where_and_goes_on_to_the_next_photo(client, web):
    later = _second_held(web)
    post(client, f"/review/{web.held_sha}/confirm", {"face": "2", "child": "grace"})
    r = post(client, f"/review/{web.held_sha}/release", {"channel": ["facebook", "instagram", "twitter"]})
    assert r.headers["location"] == f"/review/{later}"
    said = client.get(r.headers["location"]).text
    assert "missed.jpg released to Facebook, Instagram, Twitter (Grace obscured on Instagram and Twitter)" in said


def test_do_not_share_goes_on_to_the_next_photo(client, web):
    later = _second_held(web)
    r = post(client, f"/review/{web.held_sha}/reject", {"sure": "yes"})
    assert r.headers["location"] == f"/review/{later}"


def test_a_drawn_area_is_not_called_a_face_and_the_page_comes_back_to_the_photo(client, web):
    r = post(client, f"/review/{web.held_sha}/box", {"left": "10", "top": "10", "right": "60", "bottom": "60"})
    assert r.headers["location"] == f"/review/{web.held_sha}#photo"
    said = client.get(r.headers["location"]).text
    assert "the area you marked (top left) will be obscured on every channel" in said
    assert "the marked area (face" not in said


def test_a_child_without_face_matching_is_not_said_to_be_recognised(client, web):
    post(client, "/children/grace/withdraw", {"fingerprint": fingerprint(client, "/children/grace/withdraw")})
    page = client.get("/children/grace").text
    assert "PhotoGuard recognises Grace from these photos" not in page and "0 in use" not in page
    assert "not checked yet" not in page
    assert "3 photos of Grace are\n    still in the folder <code>enrol/grace/</code>" in page
    assert "kept as files, not used; their face\n    templates are erased" in page


def test_demo_through_uv_run_says_uv_run_photoguard_serve(tmp_path, monkeypatch):
    monkeypatch.setenv("UV", "/usr/local/bin/uv")
    done = CliRunner().invoke(main, ["demo", "--home", str(tmp_path / "demo"), "--workers", "1"])
    assert done.exit_code == 0, done.output
    assert f"uv run photoguard serve --home {tmp_path / 'demo'}" in done.output
    monkeypatch.delenv("UV")
    assert os.environ.get("UV") is None


def test_faces_are_numbered_left_to_right(tmp_path):
    """Face 1 is the leftmost face, whatever order the detector found them in."""
    import json

    from facekit import jpeg_bytes, scene
    from photoguard.flow.pipeline import Processor
    from photoguard.store.home import open_home

    home = open_home(tmp_path / "home")
    # The detector lists the clearest face first: here the big one on the right, the small one on the left last.
    rgb, _ = scene(1200, 600, [("hopper", 880, 150, 240), ("astronaut", 60, 260, 70), ("hopper", 480, 220, 150)],
                   seed=8)
    (home.inbox / "three.jpg").write_bytes(jpeg_bytes(rgb))
    processor = Processor(home)
    result = processor.process(home.inbox / "three.jpg")
    lefts = [json.loads(r["box"])[0] for r in processor.conn.execute(
        "SELECT box FROM faces WHERE photo_sha256 = ? ORDER BY idx", (result.sha256,))]
    processor.conn.close()
    assert len(lefts) >= 3 and lefts == sorted(lefts), lefts
