"""A full disk: the PIN is never checked without a record of the try, and `status` and the pages say
what is going on instead of failing."""

from __future__ import annotations

import os
import subprocess

import pytest
import webhome
from click.testing import CliRunner
from starlette.testclient import TestClient
from webhome import BASE, ORIGIN, PIN

from photoguard.cli import main
from photoguard.store.db import connect
from photoguard.web.app import create_app


@pytest.fixture
def full_disk_home(web_template, tmp_path):
    """The web tests' home on a small file system of its own (a tmpfs: needs root; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size = sum(p.stat().st_size for p in web_template.rglob("*") if p.is_file()) // 1024 + 4096
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield webhome.copy(web_template, mount / "home"), mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount) -> None:
    fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    for path in mount.rglob("*-shm"):   # as after every PhotoGuard process has stopped
        path.unlink()
    for path in mount.rglob("*-wal"):
        path.unlink()


def client_for(web) -> TestClient:
    return TestClient(create_app(web.home), base_url=BASE, follow_redirects=False, raise_server_exceptions=False)


def test_no_pin_check_without_a_record_and_pages_say_the_disk_is_full(full_disk_home):
    web, mount = full_disk_home
    signed_in = client_for(web)
    assert signed_in.post("/setup", data={"pin": PIN, "repeat": PIN}, headers=ORIGIN).status_code == 303
    conn = connect(web.home.database)
    file_id = conn.execute("SELECT MIN(id) FROM outbox_files").fetchone()[0]
    conn.close()
    fill(mount)

    # Wrong PINs and the right one alike: refused without a check, and never a 500.
    guesser = client_for(web)
    codes = [guesser.post("/login", data={"pin": f"99999{i}"}, headers=ORIGIN).status_code for i in range(5)]
    right = guesser.post("/login", data={"pin": PIN}, headers=ORIGIN)
    assert codes == [503] * 5 and right.status_code == 503
    assert "disk full" in right.text and "photoguard_session" not in guesser.cookies

    # The pages still show; the first page says why nothing moves.
    for path in ("/", "/review", "/children", "/outbox"):
        r = signed_in.get(path)
        assert r.status_code == 200, (path, r.status_code)
    assert "disk is full" in signed_in.get("/").text
    # A change cannot be written: a plain answer, and the log has it.
    r = signed_in.post(f"/outbox/file/{file_id}/posted", headers=ORIGIN)
    assert r.status_code == 503 and "disk is full" in r.text
    status = CliRunner().invoke(main, ["status", "--home", str(web.home.root)])
    assert status.exit_code == 0, status.output
    assert "disk: full" in status.output

    (mount / "filler").unlink()
    assert guesser.post("/login", data={"pin": PIN}, headers=ORIGIN).status_code == 303
