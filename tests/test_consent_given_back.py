"""Consent given back (issue 19 item 5): copies still waiting in Ready to post are made again with the
child shown where her consent now allows it; a copy already posted stays as it was posted. Only faces
obscured for want of consent (a recognised or confirmed child) are shown again, never one PhotoGuard or
the manager was unsure of. A real home, the real Children page and outbox re-check."""

from __future__ import annotations

import numpy as np

import webhome
from photoguard.store.db import connect
from test_web_pages import client, fingerprint, pixels, post, web  # noqa: F401


def _current(web, channel: str):
    """The picnic photo's copy in ``channel`` now (the photo PhotoGuard cleared by itself)."""
    conn = connect(web.home.database)
    row = conn.execute("SELECT id, path, made FROM outbox_files WHERE channel = ? AND photo_sha256 = ? AND ended IS NULL",
                       (channel, web.cleared_sha)).fetchone()
    conn.close()
    return row


def _grace_shown(web, channel: str) -> bool:
    rgb, boxes = webhome.photo_of_both(seed=3)
    g = boxes["grace"]
    return float(np.abs(pixels(web.home.root / _current(web, channel)["path"], g)
                        - rgb.astype(np.int16)[g[1]:g[3], g[0]:g[2]]).mean()) < 4


def test_consent_given_back_remakes_waiting_copies_but_not_posted_ones(client, web):
    assert not _grace_shown(web, "instagram") and not _grace_shown(web, "twitter")
    assert post(client, f"/outbox/file/{_current(web, 'twitter')['id']}/posted").status_code == 303
    data = {"name": "Grace", "face_matching": "yes", "channel_facebook": "yes", "channel_instagram": "yes",
            "channel_twitter": "yes", "fingerprint": fingerprint(client, "/children/grace/edit")}
    assert post(client, "/children/grace/edit", data).status_code == 303
    # Instagram's copy was waiting: made again, Grace shown, and it says why.
    assert _grace_shown(web, "instagram")
    assert "re-made showing grace: consent for instagram" in _current(web, "instagram")["made"]
    # Twitter's copy was already posted: left exactly as it was posted.
    assert not _grace_shown(web, "twitter")
    # Facebook showed her all along.
    assert _grace_shown(web, "facebook")


def test_a_copy_the_manager_released_is_not_remade_to_show_more_than_she_saw(client, web):
    """She released the held photo with Grace (confirmed) obscured on Instagram; Grace's Instagram consent
    given back later does not change that file: a released copy is published exactly as released."""
    post(client, f"/review/{web.held_sha}/confirm", {"face": "2", "child": "grace"})
    assert post(client, f"/review/{web.held_sha}/release", {"channel": ["instagram"]}).status_code == 303
    conn = connect(web.home.database)
    released = conn.execute("SELECT id, path, file_sha256 FROM outbox_files WHERE photo_sha256 = ? AND ended IS NULL",
                            (web.held_sha,)).fetchone()
    conn.close()
    data = {"name": "Grace", "face_matching": "yes", "channel_facebook": "yes", "channel_instagram": "yes",
            "fingerprint": fingerprint(client, "/children/grace/edit")}
    assert post(client, "/children/grace/edit", data).status_code == 303
    conn = connect(web.home.database)
    now = conn.execute("SELECT id, path, file_sha256 FROM outbox_files WHERE photo_sha256 = ? AND ended IS NULL",
                       (web.held_sha,)).fetchone()
    conn.close()
    assert tuple(now) == tuple(released)
    assert _grace_shown(web, "instagram")   # the copy PhotoGuard cleared by itself (picnic) was re-made
