"""Today and Ready to post as the manager found them at the end of a day (issue 19 items 3 and 4): counts
that say what is still waiting, every file in failed/ counted, a withdrawn consent not "ending", the
take-down list first, and "mark all as posted" per channel. A real home, real database, real pages."""

from __future__ import annotations

import re
from datetime import date, timedelta

from photoguard.store.db import connect
from photoguard.store.roster import sync_roster
from test_web_pages import client, post, web  # noqa: F401


def test_today_says_what_is_still_waiting_after_the_held_photo_was_released(client, web):
    assert post(client, f"/review/{web.held_sha}/release", {"channel": ["facebook"]}).status_code == 303
    text = client.get("/").text
    assert "0</span> photos to check" in text
    assert "1\n     was held for checking (0 still waiting for you)" in text


def test_every_file_in_failed_is_counted_but_not_photoguards_notes(client, web):
    (web.home.failed / "notes.txt").write_text("a shopping list dropped by mistake")
    (web.home.failed / "notes.txt.txt").write_text("notes.txt could not be processed: not a photo")
    (web.home.failed / "blurry.jpg").write_bytes(b"\xff\xd8 half a photo")
    (web.home.failed / "blurry.jpg.txt").write_text("blurry.jpg could not be processed")
    assert "2</span> could not be used" in client.get("/").text


def test_a_withdrawn_consent_is_not_listed_as_ending(client, web):
    soon = (date.today() + timedelta(days=10)).isoformat()
    web.home.roster_csv.write_text("id,name,face_matching,facebook,instagram,twitter,expires\n"
                                   f"ada,Ada,yes,yes,yes,yes,{soon}\ngrace,Grace,no,no,no,no,{soon}\n", encoding="utf-8")
    conn = connect(web.home.database)
    sync_roster(web.home, conn)
    conn.close()
    section = client.get("/").text.split("Consents ending within", 1)[1].split("</section>", 1)[0]
    assert "Ada</a>:" in section and "Grace" not in section


def test_the_take_down_list_comes_first_on_today(client, web):
    conn = connect(web.home.database)
    fb = conn.execute("SELECT id FROM outbox_files WHERE channel = 'facebook'").fetchone()[0]
    conn.close()
    post(client, f"/outbox/file/{fb}/posted")
    post(client, "/children/grace/withdraw", {"fingerprint": re.search(
        r'name="fingerprint" value="([0-9a-f]+)"', client.get("/children/grace/withdraw").text).group(1)})
    text = client.get("/").text
    assert text.index("Photos to take down") < text.index("Is PhotoGuard working?")


def test_mark_all_as_posted_per_channel_and_posted_photos_step_aside(client, web):
    page = client.get("/outbox").text
    ids = re.findall(r'action="/outbox/facebook/posted".*?</form>', page, re.S)[0]
    photos = re.findall(r'name="photo" value="(\d+)"', ids)
    assert len(photos) == 1 and "Mark all 1 as posted on Facebook" in page
    r = post(client, "/outbox/facebook/posted", {"photo": photos})
    assert r.status_code == 303
    page = client.get("/outbox").text
    assert "1 photo marked as posted on Facebook." in page
    facebook = page.split('id="ch-facebook"', 1)[1].split("</section>", 1)[0]
    assert "Nothing waiting for Facebook." in facebook and "Already posted on Facebook (1)" in facebook
    assert "(1 to post)" in page.split('id="ch-twitter"', 1)[1]      # the other channels as they were
    # Download all takes only what is still to post.
    import io
    import zipfile

    assert zipfile.ZipFile(io.BytesIO(client.get("/outbox/facebook/all.zip").content)).namelist() == []
    assert zipfile.ZipFile(io.BytesIO(client.get("/outbox/twitter/all.zip").content)).namelist() == ["picnic.jpg"]
