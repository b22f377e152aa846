"""Check again from the manager's pages (issue 19 item 5): a photo or a day's photos decided again with today's
roster, through a real running ``photoguard watch`` (the page only writes a request) and without one (the web
app takes the lock itself); a posted photo left as it was, said in words; a request left by a killed watcher
done on its next start; the buttons pressed in Chromium at 1280 and 390 px with axe passing.

A real home: Ada enrolled, two photos of Ada and Grace processed (Grace unknown, so obscured everywhere), the
party's Facebook copy posted, then Grace enrolled late (Facebook only)."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from facekit import jpeg_bytes
from starlette.testclient import TestClient
from test_pipeline import CSV_HEADER, photo_of_both, write_reference_photos
from test_watch import Watch, wait_until
from webhome import BASE, ORIGIN, PIN

from photoguard.flow import outbox as outbox_library
from photoguard.flow import redo
from photoguard.flow.pipeline import Processor
from photoguard.flow.reprocess import interrupted
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.lock import lock_holder
from photoguard.store.roster import sync_roster
from photoguard.web.app import create_app

ADA_ONLY = CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\n"
WITH_GRACE = ADA_ONLY + "grace,Grace,yes,yes,no,no,\n"
SEEDS = {"picnic.jpg": 3, "party.jpg": 4}


@pytest.fixture(scope="module")
def late_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("late") / "home"
    home = open_home(root)
    write_reference_photos(home.enrol, "ada", "astronaut")
    home.roster_csv.write_text(ADA_ONLY, encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    processor = Processor(home, conn)
    for name, seed in SEEDS.items():
        (home.inbox / name).write_bytes(jpeg_bytes(photo_of_both(seed=seed)[0]))
        assert processor.process(home.inbox / name).status == "cleared"
    party = outbox_library.find_outbox_photo(home, conn, "party.jpg", "facebook")
    outbox_library.mark_posted(home, conn, party.id, "facebook", "manager (web)")
    # Grace is enrolled late: her parents said yes to Facebook only.
    write_reference_photos(home.enrol, "grace", "hopper")
    home.roster_csv.write_text(WITH_GRACE, encoding="utf-8")
    sync_roster(home, conn)
    conn.close()
    return root


@pytest.fixture
def home(late_template, tmp_path):
    shutil.copytree(late_template, tmp_path / "home")
    return open_home(tmp_path / "home")


def client_for(home) -> TestClient:
    c = TestClient(create_app(home), base_url=BASE, follow_redirects=False)
    assert c.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN).status_code == 303
    return c


def sha_of(home, name: str) -> str:
    conn = connect(home.database)
    sha = conn.execute("SELECT sha256 FROM photos WHERE source = ?", (name,)).fetchone()[0]
    conn.close()
    return sha


def grace_shown(home, name: str, channel: str) -> bool:
    """Is Grace's face left as it was in the photo's copy now in the channel's outbox?"""
    conn = connect(home.database)
    path = conn.execute("SELECT f.path FROM outbox_files f JOIN photos p ON p.sha256 = f.photo_sha256 "
                        "WHERE p.source = ? AND f.channel = ? AND f.ended IS NULL", (name, channel)).fetchone()[0]
    conn.close()
    rgb, boxes = photo_of_both(seed=SEEDS[name])
    left, top, right, bottom = boxes["grace"]
    from PIL import Image

    with Image.open(home.root / path) as im:
        now = np.asarray(im.convert("RGB")).astype(np.int16)[top:bottom, left:right]
    return float(np.abs(now - rgb.astype(np.int16)[top:bottom, left:right]).mean()) < 4


def live_copies(home) -> dict[tuple[str, str], int]:
    conn = connect(home.database)
    rows = conn.execute("SELECT p.source, f.channel, COUNT(*) FROM outbox_files f JOIN photos p ON p.sha256 = "
                        "f.photo_sha256 WHERE f.ended IS NULL GROUP BY p.source, f.channel").fetchall()
    conn.close()
    return {(r[0], r[1]): r[2] for r in rows}


def finished(home, timeout: float = 180.0) -> redo.RedoOutcome:
    """The newest request's outcome once it is done (the page's own data)."""
    def done():
        got = redo.recent(home, limit=1)
        return got[0] if got and got[0].state == "done" and not redo.pending(home) else None
    return wait_until(done, timeout, "the photos to be checked again")


def check_again(client, **form) -> str:
    r = client.post("/check-again", data=form, headers=ORIGIN)
    assert r.status_code == 303, r.text
    return r.headers["location"]


def test_a_photo_checked_again_without_a_watcher_shows_the_late_child(home):
    """No watcher runs: the web app takes the lock itself, in a thread, and lets it go afterwards."""
    assert not grace_shown(home, "picnic.jpg", "facebook")
    client = client_for(home)
    assert "Check again" in client.get("/outbox").text
    where = check_again(client, photo=sha_of(home, "picnic.jpg"), back="/outbox")
    got = finished(home)
    assert got.words == "picnic.jpg: checked again — Grace now shows on Facebook."
    # Her consent is Facebook only: shown there, still obscured on Instagram and Twitter.
    assert grace_shown(home, "picnic.jpg", "facebook")
    assert not grace_shown(home, "picnic.jpg", "instagram") and not grace_shown(home, "picnic.jpg", "twitter")
    assert live_copies(home)[("picnic.jpg", "facebook")] == 1
    # The words reach her: straight away on Ready to post, or on the Check again page if it took longer.
    text = client.get(where.split("#")[0]).text
    assert "Grace now shows on Facebook" in text
    assert "Grace now shows on Facebook" in client.get("/check-again").text
    wait_until(lambda: lock_holder(home) is None, 30, "the web app to let the lock go")
    # The audit: who asked, and what came of it; the web log names no child.
    conn = connect(home.database)
    events = [(r["kind"], r["actor"], r["detail"]) for r in conn.execute(
        "SELECT kind, actor, detail FROM events WHERE kind IN (?, ?) ORDER BY id", (redo.ASKED, redo.CHECKED))]
    conn.close()
    assert events == [(redo.ASKED, "manager (web)", "check again: picnic.jpg"),
                      (redo.CHECKED, "manager (web)", got.words)]
    log = (home.logs / "web.log").read_text()
    assert "POST /check-again 303" in log and "Grace" not in log and "grace" not in log
    assert not redo.pending(home)


def test_a_days_photos_posted_one_left_as_it_was_in_words(home):
    client = client_for(home)
    check_again(client, day="today", back="/")
    got = finished(home)
    assert got.words == ("2 photos checked again: Grace now shows in 1 (Facebook); "
                         "1 was already posted and was left as it was.")
    assert got.lines == ["picnic.jpg: checked again — Grace now shows on Facebook.",
                         "party.jpg: it was already posted, so it was left as it was (a photo out in the world "
                         "cannot be replaced)."]
    # The posted copy is exactly as it was posted; its waiting copies on the other channels too.
    assert not grace_shown(home, "party.jpg", "facebook")
    assert live_copies(home)[("party.jpg", "instagram")] == 1
    page = client.get("/check-again").text
    assert "Photo by photo (2)" in page and "party.jpg: it was already posted" in page


def test_bad_requests_are_refused_in_words_and_need_a_signed_in_manager(home):
    client = client_for(home)
    where = check_again(client, photo="../../etc/passwd", back="/outbox")
    assert where == "/outbox" and "Not checked again: the page was out of date" in client.get("/outbox").text
    check_again(client, photo="0" * 64, back="/outbox")
    assert "Not checked again: PhotoGuard has no finished photo like that" in client.get("/outbox").text
    long_ago = date.today() - timedelta(days=400)
    check_again(client, day=long_ago.isoformat(), back="/")
    assert f"Not checked again: No photo came in on {long_ago:%d %b %Y}" in client.get("/").text
    assert not redo.pending(home)
    # Another site's page, or nobody signed in: refused before anything is written.
    other = client.post("/check-again", data={"day": "today"}, headers={"origin": "http://evil.example"})
    assert other.status_code == 403
    stranger = TestClient(create_app(home), base_url=BASE, follow_redirects=False)
    r = stranger.post("/check-again", data={"day": "today"}, headers=ORIGIN)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert not redo.pending(home)


def test_through_a_running_watcher_the_page_only_asks(home):
    """A watcher holds the lock: the page writes a request and the watcher does it between new photos."""
    w = Watch(home.root).wait_watching()
    try:
        client = client_for(home)
        check_again(client, photo=sha_of(home, "picnic.jpg"), back="/outbox")
        assert not [t for t in threading.enumerate() if t.name == "photoguard-check-again"]
        got = finished(home)
        assert got.words == "picnic.jpg: checked again — Grace now shows on Facebook."
        assert grace_shown(home, "picnic.jpg", "facebook") and not grace_shown(home, "picnic.jpg", "twitter")
        assert lock_holder(home) == w.proc.pid
        # New photos still go through while it is there.
        (home.inbox / "later.jpg").write_bytes(jpeg_bytes(photo_of_both(seed=5)[0]))
        wait_until((home.outbox_for("facebook") / "later.jpg").exists, 120, "later.jpg", w.proc)
    finally:
        assert w.stop() == 0
    assert "checked again as the manager asked (picnic.jpg): 1 cleared" in w.output()


def test_a_request_left_by_a_killed_watcher_is_done_on_its_next_start(home):
    """The watcher is killed (SIGKILL) after the first photo of two (the posted party, left as it was), while it
    is making the picnic again; its next start finishes the request, the picnic included."""
    conn = connect(home.database)
    redo.ask(home, conn, [sha_of(home, "party.jpg"), sha_of(home, "picnic.jpg")])
    conn.close()
    w = Watch(home.root)

    def half_made_again():
        conn = connect(home.database)
        try:
            return [r["source"] for r in interrupted(conn)]
        finally:
            conn.close()
    # Killed at the first sight of the picnic taken out of the outbox to be made again, not made yet.
    wait_until(half_made_again, 180, "the picnic half made again", w.proc)
    w.kill()
    assert half_made_again() == ["picnic.jpg"]
    assert redo.pending(home), "the request must survive the killed watcher"
    assert [item["source"] for item in redo.recent(home, limit=1)[0].done] == ["party.jpg"]
    w = Watch(home.root).wait_watching()
    try:
        got = finished(home)
    finally:
        assert w.stop() == 0
    assert [item["source"] for item in got.done] == ["party.jpg", "picnic.jpg"]
    assert got.words == ("2 photos checked again: Grace now shows in 1 (Facebook); "
                         "1 was already posted and was left as it was.")
    # Nothing lost, nothing twice: one copy per photo and channel, Grace shown on Facebook only.
    assert live_copies(home) == {(n, c): 1 for n in SEEDS for c in home.settings.channels}
    assert grace_shown(home, "picnic.jpg", "facebook") and not grace_shown(home, "picnic.jpg", "instagram")
    outcome_files = list((home.state / redo.OUTCOMES).glob("*.json"))
    assert len(outcome_files) == 1 and json.loads(outcome_files[0].read_text())["state"] == "done"


def test_request_files_are_written_whole_and_name_no_path(home):
    conn = connect(home.database)
    asked = redo.ask(home, conn, [sha_of(home, "picnic.jpg")])
    again = redo.ask(home, conn, [sha_of(home, "picnic.jpg")])
    conn.close()
    assert again.id == asked.id   # pressed twice before it began: asked once
    files = sorted(p.name for p in (home.state / redo.REQUESTS).iterdir())
    assert files == [f"{asked.id}.json"]   # no temp file left
    data = json.loads((home.state / redo.REQUESTS / files[0]).read_text())
    assert data == {"id": asked.id, "asked_at": asked.asked_at, "asked": "picnic.jpg",
                    "photos": [sha_of(home, "picnic.jpg")], "day": None}
    assert (home.state / redo.REQUESTS).stat().st_mode & 0o077 == 0


# --- in Chromium ----------------------------------------------------------------------------------


def _browser_page(browser, base: str, viewport: dict, sign: str):
    context = browser.new_context(base_url=base, viewport=viewport, device_scale_factor=1)
    p = context.new_page()
    p.errors = []
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.goto(f"/{sign}")
    p.fill("#pin", PIN)
    if sign == "setup":
        p.fill("#repeat", PIN)
    p.click("main button[type=submit]")
    p.wait_for_url("**/")
    return context, p


def test_check_again_pressed_in_chromium_at_1280_and_390(home, tmp_path):
    from test_web_browser import CHROMIUM, ARGS, check_page, serving  # skips this module's rest without Chromium
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "shots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    picnic = sha_of(home, "picnic.jpg")
    with serving(home) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            # A wide screen: Check again under the picnic's Facebook copy on Ready to post.
            context, page = _browser_page(browser, base, {"width": 1280, "height": 900}, "setup")
            page.goto("/outbox")
            check_page(page, shots, "redo-1280-ready-to-post")
            button = page.locator(f"section:has(#ch-facebook) form:has(input[value='{picnic}']) button")
            assert button.inner_text().startswith("Check again")
            button.click()
            page.wait_for_load_state()
            finished(home)
            if "/check-again" in page.url:   # it took longer than the button waits: the page shows how far
                page.goto("/check-again")
            assert "picnic.jpg: checked again — Grace now shows on Facebook." in page.inner_text("main")
            check_page(page, shots, "redo-1280-after")
            assert grace_shown(home, "picnic.jpg", "facebook")
            page.goto("/check-again")
            check_page(page, shots, "redo-1280-check-again-page")
            context.close()

            # A phone: Check today's photos again on Today, then the Check again page; nothing scrolls sideways.
            context, phone = _browser_page(browser, base, {"width": 390, "height": 844}, "login")
            phone.goto("/")
            check_page(phone, shots, "redo-390-today")
            phone.click("button:has-text(\"Check today's photos again\")")
            phone.wait_for_load_state()
            got = finished(home)
            assert got.words == ("2 photos checked again: 1 came out as before; "
                                 "1 was already posted and was left as it was.")
            phone.goto("/check-again")
            text = phone.inner_text("main")
            assert got.words in text and "Grace now shows on Facebook" in text
            for path in ("/", "/outbox", "/check-again"):
                phone.goto(path)
                assert phone.evaluate("document.documentElement.scrollWidth") <= 390, path
                check_page(phone, shots, "redo-390" + path.replace("/", "-"))
            context.close()
        finally:
            browser.close()


def test_while_another_process_holds_the_lock_the_page_waits_and_says_so(home):
    """``photoguard process`` (here: a process holding the lock) is working: the page does nothing itself, says
    the photo waits, and once the lock is free opening the Check again page has it done."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom photoguard.store.home import open_home\nfrom photoguard.store.lock import hold_lock\n"
        f"with hold_lock(open_home({str(home.root)!r}), 'test'):\n    print('held', flush=True)\n    time.sleep(120)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        client = client_for(home)
        where = check_again(client, photo=sha_of(home, "picnic.jpg"), back="/outbox")
        assert where.startswith("/check-again#r-")
        text = client.get("/check-again").text
        assert "Waiting to check picnic.jpg again. PhotoGuard is busy with other photos just now" in text
        assert redo.pending(home) and not grace_shown(home, "picnic.jpg", "facebook")
    finally:
        holder.kill()
        holder.wait(10)
    client.get("/check-again")
    assert finished(home).words == "picnic.jpg: checked again — Grace now shows on Facebook."
