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
    conn = connect(web.home.database)
    row = conn.execute("SELECT id, path, made FROM outbox_files WHERE channel = ? AND ended IS NULL",
                       (channel,)).fetchone()
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
