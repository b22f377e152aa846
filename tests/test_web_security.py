"""The manager's pages on a shared PC: PIN, sessions, Host and origin checks, headers, photo ids, log."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest
import webhome
from PIL import Image
from starlette.testclient import TestClient
from webhome import BASE, ORIGIN, PIN

from photoguard.photos.jpeg import strip_check
from photoguard.web.app import create_app
from photoguard.web.security import CSP

HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
STATIC = Path(__file__).resolve().parent.parent / "photoguard" / "web" / "static"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def web(web_template, tmp_path):
    return webhome.copy(web_template, tmp_path / "home")


@pytest.fixture
def clock():
    return Clock()


def client_for(web, clock) -> TestClient:
    return TestClient(create_app(web.home, clock=clock), base_url=BASE, follow_redirects=False)


@pytest.fixture
def client(web, clock):
    c = client_for(web, clock)
    r = c.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN)
    assert r.status_code == 303
    return c


def test_htmx_is_the_npm_release_with_its_licence():
    assert hashlib.sha256((STATIC / "htmx-2.0.11.min.js").read_bytes()).hexdigest() == HTMX_SHA256
    assert "Zero-Clause BSD" in (STATIC / "htmx-2.0.11.LICENSE").read_text()


def test_first_run_asks_for_a_pin_stored_as_a_private_scrypt_hash(web, clock):
    c = client_for(web, clock)
    assert c.get("/").headers["location"] == "/setup"
    r = c.post("/setup", data={"pin": "12", "repeat": "12"}, headers=ORIGIN)
    assert r.status_code == 400 and "at least 6" in r.text
    r = c.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    pin_file = web.home.state / "manager-pin.json"
    assert stat.S_IMODE(pin_file.stat().st_mode) == 0o600
    assert PIN not in pin_file.read_text() and "salt" in pin_file.read_text()
    assert c.get("/").status_code == 200
    # A second visitor cannot set the PIN again.
    other = client_for(web, clock)
    assert other.get("/setup").headers["location"] == "/login"


def test_every_page_needs_the_pin(web, clock):
    client_for(web, clock).post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN)
    stranger = client_for(web, clock)
    for path in ["/", "/children", "/children/ada", "/review", "/outbox", f"/photo/review/{web.held_sha}"]:
        r = stranger.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    r = stranger.post("/login", data={"pin": PIN, "next": "/children"}, headers=ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/children"
    # Never sent elsewhere after signing in.
    assert stranger.post("/login", data={"pin": PIN, "next": "//evil.example/"}, headers=ORIGIN).headers["location"] == "/"


def test_wrong_pin_ten_times_refused_and_slowed_down_across_restarts(web, clock, client):
    fresh = client_for(web, clock)
    codes = [fresh.post("/login", data={"pin": f"99999{i}"}, headers=ORIGIN).status_code for i in range(10)]
    assert all(code in (401, 429) for code in codes) and codes.count(429) >= 6
    assert "photoguard_session" not in fresh.cookies
    # Even the right PIN waits now, and a restart of the app does not reset the count.
    restarted = client_for(web, clock)
    r = restarted.post("/login", data={"pin": PIN}, headers=ORIGIN)
    assert r.status_code == 429 and "Wait" in r.text
    clock.now += 16 * 60
    assert restarted.post("/login", data={"pin": PIN}, headers=ORIGIN).status_code == 303


def test_idle_lock_after_15_minutes(client, clock):
    assert client.get("/").status_code == 200
    clock.now += 14 * 60
    assert client.get("/").status_code == 200       # use keeps it open
    clock.now += 15 * 60 + 1
    assert client.get("/").headers["location"].startswith("/login")


def test_forged_host_header_refused(client):
    for host in ["evil.example", "127.0.0.1.evil.example", "evil.example:8470", "localhost:9999"]:
        r = client.get("/", headers={"host": host})
        assert r.status_code == 421, host
    assert client.get("/", headers={"host": "localhost:8470"}).status_code == 200


def test_changes_from_another_origin_refused(client, web):
    before = web.home.roster_csv.read_bytes()
    form = {"child_id": "eve", "name": "Eve", "face_matching": "yes", "channel_facebook": "yes", "fingerprint": ""}
    for headers in [{"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"},
                    {"sec-fetch-site": "same-site", "origin": "http://127.0.0.1:8471"}, {}]:
        r = client.post("/children/new", data=form, headers=headers)
        assert r.status_code == 403, headers
    assert client.post(f"/review/{web.held_sha}/reject", headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert web.home.roster_csv.read_bytes() == before and (web.home.review / "missed.jpg").exists()


def test_headers_on_pages_and_photos(client, web):
    for path in ["/", "/children", f"/photo/review/{web.held_sha}", "/login"]:
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-frame-options"] == "DENY"
    assert CSP == ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                   "form-action 'self'; frame-ancestors 'none'")


def test_photo_ids_never_reach_outside_the_home(client, web):
    assert client.get(f"/photo/review/{web.held_sha}").headers["content-type"] == "image/jpeg"
    for path in ["/photo/review/..%2F..%2Fetc%2Fpasswd", "/photo/review/../../etc/passwd",
                 "/photo/outbox/..%2F..%2Fetc%2Fpasswd", "/photo/outbox/-1", "/photo/reference/%2Fetc%2Fpasswd",
                 "/outbox/file/..%2F..%2Fetc%2Fpasswd/download", "/photo/reference/" + "0" * 64]:
        r = client.get(path)
        assert r.status_code == 404 and b"root:" not in r.content, path
    # A link planted in the outbox pointing outside the home is not served either.
    conn_row = next(web.home.outbox_for("facebook").iterdir())
    conn_row.unlink()
    os.symlink("/etc/passwd", conn_row)
    from photoguard.store.db import connect

    conn = connect(web.home.database)
    ids = [r[0] for r in conn.execute("SELECT id FROM outbox_files WHERE channel = 'facebook'")]
    conn.close()
    for i in ids:
        assert b"root:" not in client.get(f"/photo/outbox/{i}").content


def test_request_log_has_no_child_ids(client, web):
    client.get("/children/grace")
    client.get("/children/grace/edit")
    log = (web.home.logs / "web.log").read_text()
    assert "/children/{child_id}" in log and "grace" not in log.lower()
    assert stat.S_IMODE((web.home.logs / "web.log").stat().st_mode) == 0o600


def test_uploads_size_limited_and_re_encoded(client, web):
    from photoguard.flow.references import MAX_UPLOAD_BYTES

    big = b"\xff" * (MAX_UPLOAD_BYTES + 200_000)
    r = client.post("/children/ada/photos", files={"photo": ("big.jpg", big, "image/jpeg")}, headers=ORIGIN)
    assert r.status_code == 400 and "larger than" in r.text
    r = client.post("/children/ada/photos", files={"photo": ("notes.jpg", b"hello, not a photo", "image/jpeg")},
                    headers=ORIGIN)
    assert r.status_code == 400 and "cannot be used as a photo" in r.text
    # A photo with EXIF (GPS) and a comment is stored re-encoded, with nothing but the picture.
    from facekit import face_patch

    img = Image.fromarray(face_patch("astronaut", 180, 0.8).rgb)
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, comment=b"Ada at 12 Rose Lane")
    r = client.post("/children/ada/photos", files={"photo": ("../../evil name.jpg", buf.getvalue(), "image/jpeg")},
                    headers=ORIGIN)
    assert r.status_code == 200, r.text
    stored = [p for p in (web.home.enrol / "ada").iterdir() if p.name.startswith("evil")]
    assert len(stored) == 1 and strip_check(stored[0]) == []
    assert stat.S_IMODE(stored[0].stat().st_mode) == 0o600


def test_serve_listens_on_this_computer_unless_told(tmp_path):
    from click.testing import CliRunner

    from photoguard.cli import main
    from photoguard.store.starter import init_home
    from photoguard.web.security import allowed_hosts

    init_home(tmp_path)
    out = CliRunner().invoke(main, ["serve", "--home", str(tmp_path), "--host", "0.0.0.0"])
    assert out.exit_code != 0 and "this computer's own network address" in out.output
    assert "--host" in CliRunner().invoke(main, ["serve", "--help"]).output
    local = allowed_hosts("127.0.0.1", 8470)
    assert "127.0.0.1:8470" in local and "localhost:8470" in local and "192.168.1.20:8470" not in local
    lan = allowed_hosts("192.168.1.20", 8470)
    assert "192.168.1.20:8470" in lan and "evil.example:8470" not in lan


def test_odd_ids_are_not_found(client):
    """'²' is a digit to Python but not a number to SQLite, and an id past SQLite's integers overflows:
    both are simply not found (both answered 500)."""
    for path in ("/outbox/file/²/download", "/outbox/file/99999999999999999999999/download",
                 "/photo/outbox/²", "/photo/outbox/99999999999999999999999"):
        assert client.get(path).status_code == 404, path
    for path in ("/outbox/file/²/posted", "/takedown/99999999999999999999999/done"):
        assert client.post(path, headers=ORIGIN).status_code in (303, 404), path


def test_a_page_that_fails_is_logged_without_what_it_said(web, clock):
    """The guard in front of every page writes a failure to web.log (the kind of error and where in the
    code, never its message, which may name a child) and answers in words."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    from photoguard.web.security import Guard, PinStore, Sessions, request_logger

    def boom(request):
        raise RuntimeError("Ada's photo could not be read")

    sessions = Sessions(clock)
    pins = PinStore(web.home, clock)
    pins.set_pin(PIN, PIN)
    token = sessions.start()
    app = Starlette(routes=[Route("/boom", boom)])
    app.add_middleware(Guard, hosts={"127.0.0.1:8470"}, pins=pins, sessions=sessions, log=request_logger(web.home))
    client = TestClient(app, base_url=BASE, raise_server_exceptions=False, cookies={"photoguard_session": token})
    r = client.get("/boom")
    assert r.status_code == 500 and "Something went wrong on this page" in r.text and "Ada" not in r.text
    log = (web.home.logs / "web.log").read_text()
    assert "GET /boom failed: RuntimeError" in log and "in boom" in log
    assert "Ada" not in log
