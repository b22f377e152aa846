"""Who's who: every open question of every held photo, a card per face, and the manager's answers. Real photos,
the real pipeline with a strict rule (so PhotoGuard asks about Ada and Grace instead of showing them), a real
home and database, the library and the pages."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from facekit import jpeg_bytes
from PIL import Image
from starlette.testclient import TestClient
from test_pipeline import CSV_HEADER, FirstLookMisses, drop, make_enrolled_home, photo_of_both
from webhome import BASE, ORIGIN, PIN

from photoguard.flow import whos_who
from photoguard.flow.pipeline import Processor
from photoguard.flow.review import ReviewError, review_queue
from photoguard.store.db import connect
from photoguard.store.home import open_home
from photoguard.store.roster import sync_roster

STRICT = "[match]\nsimilarity = 0.99\nask_from = 0.3\n"
ROSTER = CSV_HEADER + "ada,Ada,yes,yes,yes,yes,\ngrace,Grace,yes,yes,no,no,\ncleo,Cleo,yes,yes,yes,yes,\n"
ASKING = ("sandpit", "paint", "blocks")     # held only to ask about both faces
SEEDS = {"sandpit": 51, "paint": 52, "blocks": 53, "missed": 54}
NAMES = re.compile(r"\b(ada|grace|cleo)\b", re.IGNORECASE)


def make_asking_home(root: Path, photos: dict[str, int], missed: str | None = None) -> Path:
    """Ada and Grace enrolled, Cleo on the roster without photos, a strict rule; ``photos`` (name: seed)
    processed, each held only to ask about both faces; ``missed`` also held because the first look missed
    Grace (so only Ada is asked about, and the photo waits for another reason too)."""
    make_enrolled_home(root)
    (root / "photoguard.toml").write_text(STRICT, encoding="utf-8")
    home = open_home(root)
    home.roster_csv.write_text(ROSTER, encoding="utf-8")
    conn = connect(home.database)
    sync_roster(home, conn)
    conn.close()
    processor = Processor(home)
    for name, seed in photos.items():
        rgb, _ = photo_of_both(seed=seed)
        assert processor.process(drop(home, f"{name}.jpg", jpeg_bytes(rgb, quality=95))).status == "review"
    processor.conn.close()
    if missed:
        rgb, _ = photo_of_both(seed=SEEDS[missed])
        other = Processor(home, detector=FirstLookMisses())
        assert other.process(drop(home, f"{missed}.jpg", jpeg_bytes(rgb, quality=95))).status == "review"
        other.conn.close()
    return root


@pytest.fixture(scope="module")
def asking(tmp_path_factory) -> Path:
    return make_asking_home(tmp_path_factory.mktemp("whos-who") / "home", {n: SEEDS[n] for n in ASKING}, "missed")


@pytest.fixture
def home(asking, tmp_path):
    shutil.copytree(asking, tmp_path / "home")
    return open_home(tmp_path / "home")


@pytest.fixture
def conn(home):
    c = connect(home.database)
    yield c
    c.close()


def sha_of(conn, name: str) -> str:
    return conn.execute("SELECT sha256 FROM photos WHERE source = ?", (f"{name}.jpg",)).fetchone()["sha256"]


def question(conn, home, name: str, child: str) -> whos_who.Question:
    sha = sha_of(conn, name)
    return next(q for q in whos_who.open_questions(home, conn).questions() if q.sha256 == sha and q.child_id == child)


def waiting(home, conn) -> set[str]:
    return {i.source for i in review_queue(home, conn)}


def released_by(conn, name: str) -> list[str]:
    return [r["actor"] for r in conn.execute("SELECT actor FROM review_decisions WHERE kind = 'released' AND "
                                             "photo_sha256 = ? AND undone_at IS NULL", (sha_of(conn, name),))]


def files_outside_state(home) -> set[Path]:
    return {p for p in home.root.rglob("*") if p.is_file() and ".photoguard" not in p.relative_to(home.root).parts}


# --- the library -----------------------------------------------------------------------------------------


def test_every_open_question_grouped_by_the_child_it_looks_like(home, conn):
    found = whos_who.open_questions(home, conn)
    assert [g.name for g in found.groups] == ["Ada", "Grace"]
    ada, grace = found.groups
    assert [q.source for q in ada.questions] == ["sandpit.jpg", "paint.jpg", "blocks.jpg", "missed.jpg"]
    assert [q.source for q in grace.questions] == ["sandpit.jpg", "paint.jpg", "blocks.jpg"]
    assert {q.question for q in ada.questions} == {"Is this Ada?"} and ada.questions[0].choices == ("ada",)
    assert [q.held_only_to_ask for q in ada.questions] == [True, True, True, False]
    assert found.left == 7 and found.photos == 4
    assert found.children == (("ada", "Ada"), ("cleo", "Cleo"), ("grace", "Grace"))
    # The card's other picture: the child's newest reference photo, a file in enrol/<id>/.
    assert ada.reference.path.parent == (home.enrol / "ada").resolve() and ada.reference.path.is_file()
    newest = max((home.enrol / "ada").iterdir(), key=lambda p: (p.stat().st_mtime, p.name))
    assert ada.reference.path == newest.resolve()


def test_a_learnt_face_is_the_newest_reference(home, conn):
    older = sorted((home.enrol / "ada").iterdir())[0]
    conn.execute("INSERT INTO learned_faces (child_id, path, photo_sha256, face_idx, similarity, learned_at, actor) "
                 "VALUES ('ada', ?, 'x', 0, 0.9, '2030-01-01T00:00:00', 'test')", (f"ada/{older.name}",))
    conn.commit()
    assert whos_who.newest_reference(home, conn, "ada").path == older.resolve()


def test_the_crop_is_the_face_itself_unobscured_enlarged_and_written_nowhere(home, conn):
    q = question(conn, home, "sandpit", "ada")
    before = files_outside_state(home)
    data = whos_who.face_crop(home, conn, q.sha256, q.number)
    assert files_outside_state(home) == before
    crop = Image.open(io.BytesIO(data))
    assert crop.format == "JPEG" and max(crop.size) == whos_who.CROP_PX and not crop.info.get("exif")
    # The same square cut from the photo as dropped: alike (it is the face, unobscured) ...
    rgb, _ = photo_of_both(seed=SEEDS["sandpit"])
    left, top, right, bottom = json.loads(conn.execute("SELECT box FROM faces WHERE photo_sha256 = ? AND idx = ?",
                                                       (q.sha256, q.number - 1)).fetchone()["box"])
    side = max(right - left, bottom - top) * (1 + 2 * whos_who.CROP_MARGIN)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(rgb.shape[1], int(cx + side / 2 + 1)), min(rgb.shape[0], int(cy + side / 2 + 1))
    expected = np.asarray(Image.fromarray(rgb[y0:y1, x0:x1]).resize(crop.size)).astype(np.int16)
    got = np.asarray(crop.convert("RGB")).astype(np.int16)
    assert np.abs(got - expected).mean() < 6
    # ... while the copy waiting for review hides it.
    copy = np.asarray(Image.open(home.review / "sandpit.jpg").convert("RGB"))[y0:y1, x0:x1]
    hidden = np.asarray(Image.fromarray(copy).resize(crop.size)).astype(np.int16)
    assert np.abs(hidden - expected).mean() > 10


def test_no_crop_of_a_face_nobody_asks_about(home, conn):
    q = question(conn, home, "sandpit", "ada")
    whos_who.answer(home, conn, q.sha256, q.number, whos_who.NO, actor="test")
    with pytest.raises(ReviewError, match="answered already"):
        whos_who.face_crop(home, conn, q.sha256, q.number)
    missed = sha_of(conn, "missed")
    second_look = next(n for n in (1, 2) if n != question(conn, home, "missed", "ada").number)
    with pytest.raises(ReviewError):
        whos_who.face_crop(home, conn, missed, second_look)


def test_yes_no_and_someone_else_are_the_review_library_s_answers(home, conn):
    ada, grace = question(conn, home, "paint", "ada"), question(conn, home, "paint", "grace")
    said = whos_who.answer(home, conn, ada.sha256, ada.number, whos_who.YES, actor="test")
    assert "face" in said[0] and "Ada" in said[0]
    blocks = question(conn, home, "blocks", "grace")
    whos_who.answer(home, conn, blocks.sha256, blocks.number, whos_who.NO, actor="test")
    whos_who.answer(home, conn, grace.sha256, grace.number, "cleo", actor="test")
    edits = [(r["photo_sha256"], r["face_idx"] + 1, r["kind"], r["child_id"], r["actor"])
             for r in conn.execute("SELECT * FROM review_edits ORDER BY id")]
    assert edits == [(ada.sha256, ada.number, "confirm", "ada", "test"),
                     (blocks.sha256, blocks.number, "obscure", None, "test"),
                     (grace.sha256, grace.number, "confirm", "cleo", "test")]
    with pytest.raises(ReviewError, match="answered already"):      # a second click on the same card (sent on)
        whos_who.answer(home, conn, ada.sha256, ada.number, whos_who.YES, actor="test")
    assert whos_who.open_questions(home, conn).left == 4


def test_a_photo_held_only_to_ask_goes_to_ready_to_post_with_its_last_answer(home, conn):
    ada, grace = question(conn, home, "sandpit", "ada"), question(conn, home, "sandpit", "grace")
    first = whos_who.answer(home, conn, ada.sha256, ada.number, whos_who.YES, actor="manager")
    assert len(first) == 1 and "sandpit.jpg" in waiting(home, conn)        # one question still open
    last = whos_who.answer(home, conn, grace.sha256, grace.number, whos_who.NO, actor="manager")
    assert last[-1].startswith("sandpit.jpg had no other reason to wait: it is in Ready to post")
    assert "sandpit.jpg" not in waiting(home, conn)
    assert released_by(conn, "sandpit") == ["manager"]                      # audited as her release
    for channel in home.settings.channels:                                  # every channel
        assert (home.outbox_for(channel) / "sandpit.jpg").is_file()
    assert not (home.review / "sandpit.jpg").exists()


def test_a_photo_held_for_another_reason_still_waits_on_photos_to_check(home, conn):
    q = question(conn, home, "missed", "ada")
    said = whos_who.answer(home, conn, q.sha256, q.number, whos_who.YES, actor="manager")
    assert "missed.jpg has no more questions; it still waits on Photos to check" in said[-1]
    assert "missed.jpg" in waiting(home, conn) and released_by(conn, "missed") == []
    assert not any((home.outbox_for(c) / "missed.jpg").exists() for c in home.settings.channels)


def shown(home, conn, child):
    """The faces a Who's who page shows the manager for ``child`` (what its Yes to all sends)."""
    return [(q.sha256, q.number) for q in whos_who.open_questions(home, conn).questions() if q.child_id == child]


def test_yes_to_all_for_one_child(home, conn):
    done, words = whos_who.yes_to_all(home, conn, "grace", shown(home, conn, "grace"), actor="manager")
    assert done == 3 and words == ["Yes to all: 3 faces are Grace."]     # Ada is still asked about on each
    left = whos_who.open_questions(home, conn)
    assert [g.name for g in left.groups] == ["Ada"] and left.left == 4
    done, words = whos_who.yes_to_all(home, conn, "ada", shown(home, conn, "ada"), actor="manager")
    assert done == 4 and words[0] == "Yes to all: 4 faces are Ada."
    assert words[1:] == ["3 photos (sandpit.jpg, paint.jpg, blocks.jpg) had no other reason to wait: they are in Ready to post.",
                         "missed.jpg has no more questions but still waits on Photos to check for another reason."]
    assert waiting(home, conn) == {"missed.jpg"}
    assert whos_who.open_questions(home, conn).left == 0


# --- the pages --------------------------------------------------------------------------------------------


@pytest.fixture
def client(home):
    from photoguard.web.app import create_app

    c = TestClient(create_app(home), base_url=BASE, follow_redirects=False)
    yield c
    c.close()


def sign_in(client) -> None:
    assert client.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN).status_code == 303


def test_crops_are_refused_without_a_session(home, conn, client):
    q = question(conn, home, "sandpit", "ada")
    sign_in(client)
    client.post("/logout", headers=ORIGIN)
    for path in (f"/face/{q.sha256}/{q.number}", "/whos-who"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
        assert answer.headers.get("content-type", "").split(";")[0] != "image/jpeg"
    fresh = TestClient(client.app, base_url=BASE, follow_redirects=False)     # never signed in
    assert fresh.get(f"/face/{q.sha256}/{q.number}").status_code == 303


def test_the_page_the_crop_and_the_answers(home, conn, client):
    sign_in(client)
    q = question(conn, home, "sandpit", "ada")
    page = client.get("/whos-who")
    assert page.status_code == 200
    text = page.text
    assert "<strong>7</strong> faces left to answer, in 4 photos" in text
    assert text.count('class="who-card"') == 7 and "Is this Ada?" in text and "Is this Grace?" in text
    assert "Yes to all 4: all Ada" in text and "Yes to all 3: all Grace" in text
    assert f'src="/face/{q.sha256}/{q.number}"' in text
    assert '<option value="cleo">Cleo</option>' in text and 'href="/whos-who" aria-current="page"' in text
    assert "<script src=\"/static/whos_who.js\"" in text and "<script>" not in text and " style=" not in text
    crop = client.get(f"/face/{q.sha256}/{q.number}")
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert crop.headers["cache-control"] == "no-store"
    assert Image.open(io.BytesIO(crop.content)).size == (whos_who.CROP_PX, whos_who.CROP_PX)
    assert client.get(f"/face/{q.sha256}/9").status_code == 404
    assert client.get("/face/not-a-sha/1").status_code == 404
    assert client.get("/static/whos_who.js").status_code == 200 and client.get("/static/whos_who.css").status_code == 200

    # Yes, then someone else, each back at the same place in the list.
    sent = client.post("/whos-who/answer", data={"photo": q.sha256, "face": q.number, "answer": "yes", "at": "0"},
                       headers=ORIGIN)
    assert sent.status_code == 303 and sent.headers["location"] == "/whos-who?at=0"
    grace = question(conn, home, "sandpit", "grace")
    sent = client.post("/whos-who/answer", data={"photo": grace.sha256, "face": grace.number, "answer": "someone",
                                                 "child": "cleo", "at": "3"}, headers=ORIGIN)
    assert sent.headers["location"] == "/whos-who?at=3"
    text = client.get(sent.headers["location"]).text
    assert "sandpit.jpg had no other reason to wait: it is in Ready to post" in text
    assert "<strong>5</strong> faces left to answer, in 3 photos" in text and 'data-at="3"' in text
    assert released_by(conn, "sandpit") == ["manager"]
    # Someone else without choosing anyone: nothing done, said so.
    paint = question(conn, home, "paint", "ada")
    client.post("/whos-who/answer", data={"photo": paint.sha256, "face": paint.number, "answer": "someone", "child": ""},
                headers=ORIGIN)
    assert "Not done: choose an answer" in client.get("/whos-who").text
    # No.
    client.post("/whos-who/answer", data={"photo": paint.sha256, "face": paint.number, "answer": "no"}, headers=ORIGIN)
    kinds = [(r["kind"], r["child_id"]) for r in conn.execute("SELECT kind, child_id FROM review_edits ORDER BY id")]
    assert kinds == [("confirm", "ada"), ("confirm", "cleo"), ("obscure", None)]
    # An answer from another site is refused (the security middleware).
    assert client.post("/whos-who/answer", data={"photo": paint.sha256, "face": 2, "answer": "no"},
                       headers={"origin": "http://evil.example"}).status_code == 403


def test_yes_to_all_on_the_page_releases_and_the_log_names_no_child(home, conn, client):
    sign_in(client)
    client.get("/whos-who")
    questions = whos_who.open_questions(home, conn).questions()
    for q in questions:
        assert client.get(f"/face/{q.sha256}/{q.number}").status_code == 200
    for child in ("grace", "ada"):   # each group's Yes to all, as its form on the page sends it
        page = client.get("/whos-who").text
        form = page[page.index(f'name="child" value="{child}"'):]
        faces = re.findall(r'name="face" value="([0-9a-f]{64}:\d+)"', form[:form.index("</form>")])
        assert len(faces) == len(shown(home, conn, child))
        assert client.post("/whos-who/yes-to-all", data={"child": child, "face": faces}, headers=ORIGIN).status_code == 303
    text = client.get("/whos-who").text
    assert "Yes to all: 4 faces are Ada." in text and "Nothing left to answer" in text
    assert waiting(home, conn) == {"missed.jpg"}
    assert all(released_by(conn, n) == ["manager"] for n in ASKING)
    assert client.get(f"/face/{questions[0].sha256}/{questions[0].number}").status_code == 404   # answered: no crop
    log = (home.logs / "web.log").read_text(encoding="utf-8")
    assert "/face/{sha}/{number}" in log and "/whos-who/yes-to-all" in log
    assert not NAMES.search(log), log
    assert not any(q.sha256 in log for q in questions)


def test_the_single_photos_page_shows_the_face_it_asks_about(home, conn, client):
    """Never blind: the photo's own page shows each face it asks about, unobscured, from the same crop."""
    sign_in(client)
    q = question(conn, home, "sandpit", "ada")
    text = client.get(f"/review/{q.sha256}").text
    assert f'src="/face/{q.sha256}/{q.number}"' in text
    assert f"Face {q.number} as it is in the photo, not obscured, enlarged" in text
    client.post(f"/review/{q.sha256}/confirm", data={"face": str(q.number), "child": "ada"}, headers=ORIGIN)
    assert f'src="/face/{q.sha256}/{q.number}"' not in client.get(f"/review/{q.sha256}").text   # answered


def test_yes_to_all_says_when_an_answer_does_not_teach(home, conn):
    """Reference photos must be 400 px wide here: Grace's faces are confirmed, none is kept as a reference
    photo, and the manager is told so for each, as she is for a single answer."""
    (home.root / "photoguard.toml").write_text(STRICT.replace("[match]\n", "[match]\nmin_face_px = 400\n"),
                                               encoding="utf-8")
    strict = open_home(home.root)
    asked = sum(q.child_id == "grace" for q in whos_who.open_questions(strict, conn).questions())
    done, words = whos_who.yes_to_all(strict, conn, "grace", shown(strict, conn, "grace"), actor="manager")
    assert done == asked == 3 and words[0] == "Yes to all: 3 faces are Grace."
    not_kept = [w for w in words if "Not kept as a reference photo of Grace: the face is only" in w]
    assert len(not_kept) == 3, words
    assert not conn.execute("SELECT COUNT(*) FROM learned_faces").fetchone()[0]


def test_yes_to_all_answers_only_the_faces_the_page_showed(home, conn):
    """A face asked about after the manager opened the page is never answered for her by Yes to all."""
    seen = shown(home, conn, "ada")
    done, words = whos_who.yes_to_all(home, conn, "ada", seen[:-1], actor="manager")
    assert done == len(seen) - 1
    assert "1 more face that may be Ada arrived since the page was opened: answer it below." in words
    assert shown(home, conn, "ada") == seen[-1:]
