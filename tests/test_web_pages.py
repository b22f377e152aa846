"""The manager's pages against a real home and database: roster, review, outbox, dashboard."""

from __future__ import annotations

import io
import re
import stat
import zipfile
from datetime import date, timedelta

import numpy as np
import pytest
import webhome
from PIL import Image
from starlette.testclient import TestClient
from webhome import BASE, ORIGIN, PIN

from photoguard.store.db import connect
from photoguard.web.app import create_app


@pytest.fixture
def web(web_template, tmp_path):
    return webhome.copy(web_template, tmp_path / "home")


@pytest.fixture
def client(web):
    c = TestClient(create_app(web.home), base_url=BASE, follow_redirects=False)
    assert c.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN).status_code == 303
    return c


def post(client, path, data=None, **kw):
    return client.post(path, data=data or {}, headers=ORIGIN, **kw)


def fingerprint(client, path) -> str:
    return re.search(r'name="fingerprint" value="([0-9a-f]+|none)"', client.get(path).text).group(1)


def pixels(path, box) -> np.ndarray:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(np.int16)
    left, top, right, bottom = box
    return rgb[top:bottom, left:right]


def test_dashboard_says_what_waits(client, web):
    text = client.get("/").text
    assert "1</span> photo to check" in text
    assert "not watching the inbox" in text
    assert "Nothing to take down" in text


def test_children_list_and_page(client, web):
    text = client.get("/children").text
    assert "Ada" in text and "Grace" in text
    grace_row = text[text.index(">Grace<"):].split("</tr>")[0]
    assert grace_row.count("shown") == 1 and grace_row.count("obscured") == 2
    page = client.get("/children/grace").text
    assert "3 in use" in page and "added to the roster" in page
    assert client.get("/children/nobody").status_code == 404
    assert client.get("/children/..%2Fada").status_code == 404


def test_add_a_child_writes_the_csv_and_syncs(client, web):
    form = {"child_id": "eve", "name": "Eve", "face_matching": "yes", "channel_facebook": "yes",
            "expires": (date.today() + timedelta(days=10)).isoformat(),
            "fingerprint": fingerprint(client, "/children/new")}
    r = post(client, "/children/new", form)
    assert r.status_code == 303 and r.headers["location"] == "/children/eve"
    assert web.home.roster_csv.read_text().endswith(f"eve,Eve,yes,yes,no,no,{form['expires']}\n")
    page = client.get("/children/eve").text
    assert "Saved Eve" in page and "add at least 3 more" in page
    # Her consent ends within 30 days: on the first page.
    assert "Eve</a>:\n" in client.get("/").text or "ends in 10 days" in client.get("/").text
    # A second add with the same id is refused with words, not an error page.
    form["fingerprint"] = fingerprint(client, "/children/new")
    r = post(client, "/children/new", form)
    assert r.status_code == 400 and "already a child" in r.text


def test_withdraw_re_renders_the_outbox_and_lists_posted_photos_to_take_down(client, web):
    fb = web.home.outbox_for("facebook") / "picnic.jpg"
    rgb, boxes = webhome.photo_of_both(seed=3)
    g, a = boxes["grace"], boxes["ada"]
    original = rgb.astype(np.int16)
    assert np.abs(pixels(fb, g) - original[g[1]:g[3], g[0]:g[2]]).mean() < 4
    # Picnic was posted on Twitter (Ada only there); Facebook's copy is still in the outbox.
    conn = connect(web.home.database)
    tw_id = conn.execute("SELECT id FROM outbox_files WHERE channel = 'twitter'").fetchone()[0]
    fb_id = conn.execute("SELECT id FROM outbox_files WHERE channel = 'facebook'").fetchone()[0]
    conn.close()
    assert post(client, f"/outbox/file/{fb_id}/posted").status_code == 303
    assert "Already posted on Facebook (1)" in client.get("/outbox").text
    confirm = client.get("/children/grace/withdraw").text
    assert "Withdraw all consent for Grace?" in confirm
    r = post(client, "/children/grace/withdraw", {"fingerprint": fingerprint(client, "/children/grace/withdraw")})
    assert r.status_code == 303
    page = client.get("/children/grace").text
    assert "Consent withdrawn for Grace" in page and "templates are erased" in page
    # The posted Facebook copy is on the take-down list, on the first page and the outbox page.
    for path in ["/", "/outbox"]:
        text = client.get(path).text
        assert "Photos to take down" in text and "Grace (no consent" in text, path
    # Whatever is in the Facebook outbox now shows Grace obscured, Ada untouched.
    conn = connect(web.home.database)
    row = conn.execute("SELECT path FROM outbox_files WHERE channel = 'facebook' AND ended IS NULL").fetchone()
    conn.close()
    if row is not None:
        now = web.home.root / row["path"]
        assert np.abs(pixels(now, g) - original[g[1]:g[3], g[0]:g[2]]).mean() > 15
        assert np.abs(pixels(now, a) - original[a[1]:a[3], a[0]:a[2]]).mean() < 4
    # Marked taken down: off the list.
    item = re.search(r'action="/takedown/(\d+)/done"', client.get("/").text).group(1)
    assert item == str(fb_id)
    assert post(client, f"/takedown/{item}/done", {"back": "/"}).headers["location"] == "/"
    assert "Nothing to take down" in client.get("/").text
    assert tw_id


def test_erase_a_child(client, web):
    r = post(client, "/children/grace/erase", {"fingerprint": fingerprint(client, "/children/grace/erase"),
                                               "photos": "delete"})
    assert r.status_code == 303 and r.headers["location"] == "/children"
    assert "grace" not in web.home.roster_csv.read_text()
    assert not (web.home.enrol / "grace").exists()
    conn = connect(web.home.database)
    assert conn.execute("SELECT COUNT(*) FROM templates WHERE child_id = 'grace'").fetchone()[0] == 0
    conn.close()
    page = client.get("/children/grace").text   # history stays
    assert "Not on the roster any more" in page and "taken off the roster" in page


def test_review_release_to_one_channel(client, web):
    queue = client.get("/review").text
    assert "missed.jpg" in queue and f"/review/{web.held_sha}" in queue
    page = client.get(f"/review/{web.held_sha}").text
    # Both faces boxed and numbered, the second one in words with its place.
    assert page.count("<rect ") == 2 and "Face 2: not recognised" in page
    assert "A face the first look missed, middle right" in page
    r = post(client, f"/review/{web.held_sha}/release", {"channel": "facebook"})
    assert r.status_code == 303
    assert (web.home.outbox_for("facebook") / "missed.jpg").exists()
    assert not (web.home.outbox_for("instagram") / "missed.jpg").exists()
    assert "released to Facebook" in client.get("/review").text


def test_review_reject(client, web):
    asked = post(client, f"/review/{web.held_sha}/reject")      # X, or the button: asks first
    assert asked.status_code == 200 and "Do not share missed.jpg?" in asked.text
    assert (web.home.review / "missed.jpg").exists()
    assert post(client, f"/review/{web.held_sha}/reject", {"sure": "yes"}).status_code == 303
    assert "will not be shared" in client.get("/review").text
    assert not (web.home.review / "missed.jpg").exists()


def test_outbox_downloads(client, web):
    text = client.get("/outbox").text
    ids = re.findall(r'/outbox/file/(\d+)/download', text)
    assert len(ids) == 3
    one = client.get(f"/outbox/file/{ids[0]}/download")
    assert one.headers["content-type"] == "image/jpeg" and "picnic.jpg" in one.headers["content-disposition"]
    z = zipfile.ZipFile(io.BytesIO(client.get("/outbox/facebook/all.zip").content))
    assert z.namelist() == ["picnic.jpg"]
    assert client.get("/outbox/myspace/all.zip").status_code == 404


def test_review_changes_preview_and_undo(client, web):
    sha = web.held_sha
    # The preview is the pipeline's rendering for that channel: a JPEG, different per consent.
    previews = {ch: client.get(f"/review/{sha}/preview/{ch}") for ch in ("facebook", "instagram")}
    assert all(r.headers["content-type"] == "image/jpeg" for r in previews.values())
    assert client.get(f"/review/{sha}/preview/myspace").status_code == 404
    # Confirm face 2 as Grace: the consent rule decides (Facebook only).
    post(client, f"/review/{sha}/confirm", {"face": "2", "child": "grace"})
    page = client.get(f"/review/{sha}").text
    assert "face 2 is Grace; shown on Facebook, obscured elsewhere" in page
    assert "Face 2: Grace" in page and "You confirmed it is Grace" in page
    # Obscure face 1 (Ada), then take it back.
    post(client, f"/review/{sha}/obscure", {"face": "1"})
    assert "face 1 will be obscured on every channel" in client.get(f"/review/{sha}").text
    post(client, f"/review/{sha}/undo-edit")
    assert "taken back" in client.get(f"/review/{sha}").text
    # Draw a box (the no-script form): a third, pink, numbered area.
    post(client, f"/review/{sha}/box", {"left": "20", "top": "520", "right": "160", "bottom": "620"})
    page = client.get(f"/review/{sha}").text
    assert page.count("<rect ") == 3 and "the area you marked (bottom left) will be obscured on every channel" in page
    post(client, f"/review/{sha}/box", {"left": "x", "top": "1", "right": "2", "bottom": "3"})
    assert "Not done" in client.get(f"/review/{sha}").text
    # Release to Facebook: Grace shown there (confirmed, consented); the drawn area obscured.
    assert post(client, f"/review/{sha}/release", {"channel": "facebook"}).status_code == 303
    fb = web.home.outbox_for("facebook") / "missed.jpg"
    original = web.held_rgb.astype(np.int16)
    g = webhome.photo_of_both(seed=10)[1]["grace"]
    assert np.abs(pixels(fb, g) - original[g[1]:g[3], g[0]:g[2]]).mean() < 5
    assert np.abs(pixels(fb, (20, 520, 160, 620)) - original[520:620, 20:160]).mean() > 10
    assert not (web.home.outbox_for("instagram") / "missed.jpg").exists()
    # Undo the release while the file is still in the outbox: back in review, file gone.
    queue = client.get("/review").text
    assert "Undo: release of missed.jpg" in queue
    r = post(client, "/review/undo")
    assert r.headers["location"] == f"/review/{sha}"
    assert not fb.exists() and "taken back" in client.get(f"/review/{sha}").text


def test_an_answer_teaches_and_the_childs_page_lists_and_removes_what_was_learnt(client, web):
    sha = web.held_sha
    post(client, f"/review/{sha}/confirm", {"face": "2", "child": "grace"})
    assert "Kept as one of Grace&#39;s reference photos" in client.get(f"/review/{sha}").text
    learnt = [p for p in (web.home.enrol / "grace").iterdir() if p.name.startswith("confirmed-")]
    assert len(learnt) == 1
    child = client.get("/children/grace").text
    assert "Learnt from your answer: face 2 of missed.jpg" in child and "4 in use" in child
    photo = re.search(r'name="photo" value="([0-9a-f]{64})"[^<]*<button type="submit" class="link">Remove',
                      child[child.index("Learnt from your answer"):]).group(1)
    assert post(client, "/children/grace/photos/remove", {"photo": photo}).status_code == 303
    child = client.get("/children/grace").text
    assert "Learnt from your answer" not in child and "3 in use" in child   # its template erased with it
    assert not [p for p in (web.home.enrol / "grace").iterdir() if p.name.startswith("confirmed-")]
    conn = connect(web.home.database)
    assert conn.execute("SELECT COUNT(*) FROM learned_faces").fetchone()[0] == 0
    conn.close()


def test_dashboard_says_why_the_watcher_is_paused(client, web):
    import json
    import os

    from photoguard.flow.watch_status import STATUS_FILE
    from photoguard.store.lock import hold_lock

    with hold_lock(web.home, "test"):
        (web.home.state / STATUS_FILE).write_text(json.dumps(
            {"pid": os.getpid(), "state": "paused: the disk is full", "in_flight": 0, "waiting": 0}))
        text = client.get("/").text
    assert "running but paused: the disk is full" in text


def test_reference_photo_feedback_in_words(client, web):
    from facekit import face_patch, jpeg_bytes, scene

    from photoguard.flow.enrol import enrol

    rgb, _ = scene(900, 600, [("astronaut", 80, 150, 200), ("hopper", 640, 60, 150)], seed=4)
    r = client.post("/children/ada/photos", files={"photo": ("two.jpg", jpeg_bytes(rgb), "image/jpeg")}, headers=ORIGIN)
    assert r.status_code == 200
    assert "two.jpg: Not used: a second face, top right, at" in r.text and "A second face, top right, at" in r.text
    assert "use the largest face</button>" in r.text     # kept: the other face may be a poster
    # A photo that cannot be used is not kept (PhotoGuard's own copy).
    small, _ = scene(900, 600, [("astronaut", 400, 250, 50)], seed=4)
    r = client.post("/children/ada/photos", files={"photo": ("far.jpg", jpeg_bytes(small), "image/jpeg")}, headers=ORIGIN)
    assert "far.jpg: Not used:" in r.text and "It was not kept; choose a better photo." in r.text
    assert not any(p.name.startswith("far") for p in (web.home.enrol / "ada").iterdir())
    remove = re.search(r'name="photo" value="([0-9a-f]{64})"', client.get("/children/ada").text[
        client.get("/children/ada").text.index("two.jpg"):]).group(1)
    assert post(client, "/children/ada/photos/remove", {"photo": remove}).status_code == 303
    # Several at once (a child's photos in one go): each checked and said in words.
    good = [jpeg_bytes(face_patch("astronaut", w, 0.8).rgb) for w in (170, 210)]
    r = client.post("/children/ada/photos", headers=ORIGIN, files=[
        ("photo", ("a.jpg", good[0], "image/jpeg")), ("photo", ("b.jpg", good[1], "image/jpeg")),
        ("photo", ("notes.jpg", b"not a photo", "image/jpeg"))])
    assert r.status_code == 200
    assert r.text.count("Good reference photo") == 2 and "notes.jpg:</strong> This file cannot be used" in r.text
    assert "5 in use" in client.get("/children/ada").text
    # A photo put in the folder by hand is the manager's: listed as not usable, and removable.
    (web.home.enrol / "ada" / "two.jpg").write_bytes(jpeg_bytes(rgb))
    conn = connect(web.home.database)
    enrol(web.home, conn)
    conn.close()
    page = client.get("/children/ada").text
    assert "not usable: a second face, top right" in page
    sha = re.search(r'name="photo" value="([0-9a-f]{64})"', page[page.index("two.jpg"):]).group(1)
    assert post(client, "/children/ada/photos/remove", {"photo": sha}).status_code == 303
    assert not any(p.name.startswith("two") for p in (web.home.enrol / "ada").iterdir())
    assert stat.S_IMODE((web.home.logs / "web.log").stat().st_mode) == 0o600


def test_change_a_consent_from_the_child_page(client, web):
    form = client.get("/children/ada/edit").text
    assert 'value="Ada"' in form and 'name="channel_twitter" value="yes" checked' in form
    data = {"name": "Ada L.", "face_matching": "yes", "channel_facebook": "yes", "channel_instagram": "yes",
            "expires": "2027-07-31", "fingerprint": fingerprint(client, "/children/ada/edit")}
    assert post(client, "/children/ada/edit", data).headers["location"] == "/children/ada"
    assert web.home.roster_csv.read_text().splitlines()[1] == "ada,Ada L.,yes,yes,yes,no,2027-07-31"
    page = client.get("/children/ada").text
    assert "Twitter: yes → no" in page and "name: Ada → Ada L." in page
    assert "obscured (no consent for twitter)" in page
    # A bad date is refused in words and nothing is written.
    data.update(expires="31/07/2027", fingerprint=fingerprint(client, "/children/ada/edit"))
    r = post(client, "/children/ada/edit", data)
    assert r.status_code == 400 and "YYYY-MM-DD" in r.text


def test_dashboard_names_inbox_files_photoguard_does_not_take(client, web):
    (web.home.inbox / "._IMG_0001.jpg").write_bytes(b"\0\5\26\7 Mac OS X companion")
    text = client.get("/").text
    assert "In the inbox too: 1 file(s) PhotoGuard does not take (._IMG_0001.jpg)" in text


def test_children_page_says_what_is_wrong_in_the_roster_file(client, web):
    with open(web.home.roster_csv, "a", encoding="utf-8") as fh:
        fh.write(",Nobody,yes,yes,yes,yes,\n")
    text = client.get("/children").text
    assert "children.csv needs fixing" in text
    assert re.search(r"Line \d+ of children.csv: ", text)


def test_a_reference_photo_from_more_than_a_year_before_is_kept_but_not_used(client, web):
    """Ada's photos were all taken today; one her camera dated three years ago is listed, not compared."""
    from facekit import face_patch, jpeg_bytes

    from photoguard.flow.enrol import enrol

    before = re.search(r"(\d+) in use", client.get("/children/ada").text).group(1)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = f"{date.today().year - 3}:06:01 09:00:00"
    (web.home.enrol / "ada" / "baby.jpg").write_bytes(jpeg_bytes(face_patch("astronaut", 180, 0.7).rgb, exif=exif))
    conn = connect(web.home.database)
    enrol(web.home, conn)
    conn.close()
    page = client.get("/children/ada").text
    assert f"{before} in use" in page
    assert page.count("kept, not used now: taken more than a year before Ada") == 1


def test_today_says_who_is_busy_with_the_home_before_the_watcher_has_a_status(client, web):
    """A watcher loading its face models holds the lock before it writes how it is: Today says it is starting,
    not that 'another job' is at work (found on the first-day walk)."""
    from photoguard.store.lock import CHECKING_AGAIN, WATCH_COMMAND, hold_lock

    for holder, words in ((WATCH_COMMAND, "PhotoGuard is starting to watch the inbox."),
                          (CHECKING_AGAIN, "PhotoGuard is checking photos again"),
                          ("photoguard purge", "Another PhotoGuard job is working on the photos right now.")):
        with hold_lock(web.home, holder):
            assert words in client.get("/").text, holder


def test_an_uploaded_photo_keeps_the_day_it_was_taken_without_its_metadata(client, web):
    """The page keeps a re-encoded copy without metadata; the camera's day still places it among her photos."""
    from facekit import face_patch, jpeg_bytes

    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = f"{date.today().year - 3}:06:01 09:00:00"
    r = client.post("/children/ada/photos", headers=ORIGIN, files={
        "photo": ("baby.jpg", jpeg_bytes(face_patch("astronaut", 180, 0.7).rgb, exif=exif), "image/jpeg")})
    assert r.status_code == 200 and "Good reference photo" in r.text
    [kept] = [p for p in (web.home.enrol / "ada").iterdir() if p.name.startswith("baby")]
    assert not Image.open(kept).getexif()                       # no metadata in PhotoGuard's copy
    assert "kept, not used now: taken more than a year before Ada" in client.get("/children/ada").text


def test_today_says_when_it_lists_only_the_latest_photos(client, web):
    """More photos today than the table lists: the page says the table holds the latest, so that none seems lost."""
    from test_watch import tiny_jpeg

    from photoguard.flow.pipeline import Processor

    def done_today() -> int:
        line = re.search(r"Since midnight: (\d+) went straight to Ready to post, (\d+)", client.get("/").text)
        return int(line.group(1)) + int(line.group(2))

    assert "latest:" not in client.get("/").text
    processor = Processor(web.home)
    while done_today() <= 8:
        path = web.home.inbox / f"more{done_today()}.jpg"
        path.write_bytes(tiny_jpeg(done_today()))
        processor.process(path)
    text = client.get("/").text
    assert "The 8 latest:" in text and text.count("<tr><td>") == 8
