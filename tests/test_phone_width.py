"""The manager's pages on a phone (issue 19 item 2): at 390 px wide no page scrolls sideways, and on a photo
to check the decision (release, do not share) comes before the faces, right after the photo. Debian's
Chromium through Playwright; axe finds no serious or critical problem; screenshots looked at."""

from __future__ import annotations

import pytest

from test_web_browser import CHROMIUM, ARGS, browser, check_page, choose_pin, server, shots  # noqa: F401
from webhome import PIN

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def phone(browser, server):
    web, base = server
    context = browser.new_context(base_url=base, viewport=PHONE, device_scale_factor=1)
    p = context.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.errors = errors
    p.goto("/setup")
    choose_pin(p)
    yield p
    context.close()


def pages(web) -> list[str]:
    return ["/", "/review", f"/review/{web.held_sha}", "/whos-who", "/children", "/children/ada", "/children/new",
            "/children/ada/edit", "/outbox"]


def test_no_page_scrolls_sideways_on_a_phone(phone, server, shots):
    web, _ = server
    wide = {}
    for path in pages(web):
        phone.goto(path)
        width = phone.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide[path] = width
        check_page(phone, shots, "phone" + path.replace("/", "-")[:40])
    assert wide == {}, f"pages wider than {PHONE['width']} px: {wide}"


def test_the_decision_on_a_photo_comes_right_after_the_photo(phone, server):
    web, _ = server
    phone.goto(f"/review/{web.held_sha}")
    photo = phone.locator("svg#photo").bounding_box()
    release = phone.locator("button:has-text('Release')").bounding_box()
    faces = phone.locator("#faces-h").bounding_box()
    assert release["y"] < faces["y"], "the release comes after the faces"
    assert release["y"] - (photo["y"] + photo["height"]) < PHONE["height"], "the release is a screen past the photo"


def test_the_take_down_list_fits_a_phone_too(phone, server, shots):
    """A posted photo showing a child whose consent then went: Today and Ready to post list it to take down,
    still without scrolling sideways."""
    web, _ = server
    from photoguard.store.db import connect

    conn = connect(web.home.database)
    fb = conn.execute("SELECT id FROM outbox_files WHERE channel = 'facebook' AND ended IS NULL").fetchone()[0]
    conn.close()
    phone.goto("/outbox")
    phone.locator(f"form[action='/outbox/file/{fb}/posted'] button").click()
    phone.wait_for_url("**/outbox*")
    phone.goto("/children/grace/withdraw")
    phone.click("button:has-text('Yes, withdraw consent')")
    phone.wait_for_url("**/children/grace")
    for path in ("/", "/outbox"):
        phone.goto(path)
        assert "Photos to take down" in phone.inner_text("main"), path
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
        check_page(phone, shots, "phone-take-down" + path.replace("/", "-"))


def test_a_touch_phone_is_not_told_about_keys(browser, server):  # noqa: F811
    """Keys mean nothing without a keyboard: a touch phone does not see the keys line; a computer does."""
    web, base = server
    for touch, shown in ((True, False), (False, True)):
        context = browser.new_context(base_url=base, viewport=PHONE, is_mobile=touch, has_touch=touch)
        p = context.new_page()
        p.goto("/login")
        p.fill("#pin", PIN)
        p.click("button[type=submit]")
        p.goto(f"/review/{web.held_sha}")
        assert p.locator("p.keys").is_visible() is shown, f"touch={touch}"
        context.close()
