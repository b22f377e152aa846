"""Who's who in a real browser (Debian's Chromium through Playwright, as tests/test_web_browser.py launches it):
20 questions answered with the keys and one "Yes to all", every click and key press counted (the goal: one
action per face, one per child group), and screenshots at 390 px and 1280 px wide under the test's tmp_path.
"""

from __future__ import annotations

import pytest
from test_web_browser import browser, check_page, choose_pin, serving  # noqa: F401
from test_whos_who import make_asking_home
from webhome import PIN

from photoguard.flow.review import review_queue
from photoguard.store.db import connect
from photoguard.store.home import open_home

PHOTOS = {f"outing{i:02d}": 60 + i for i in range(10)}    # 10 photos, each asking about Ada and Grace: 20 questions


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = open_home(make_asking_home(tmp_path_factory.mktemp("whos-who-browser") / "home", PHOTOS))
    with serving(home) as base:
        yield home, base


def open_page(browser, base: str, width: int, height: int):
    context = browser.new_context(base_url=base, viewport={"width": width, "height": height})
    p = context.new_page()
    p.errors = []
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    return context, p


def left(page) -> int:
    return int(page.inner_text("p.left strong"))


def test_twenty_questions_one_action_per_face_and_one_per_child_group(browser, server, tmp_path):
    home, base = server
    print(f"\nscreenshots: {tmp_path}")
    # The manager's phone, 390 px wide: the cards fit, nothing wider than the window.
    phone, page = open_page(browser, base, 390, 844)
    page.goto("/setup")
    choose_pin(page)
    page.goto("/whos-who")
    assert left(page) == 20
    assert page.locator(".who-card").count() == 20
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    first = page.locator("#card-0")
    face, ref = first.locator("figure.face img").bounding_box(), first.locator("figure.ref img").bounding_box()
    assert face["width"] >= 150 and abs(face["y"] - ref["y"]) < 2 and face["x"] < ref["x"]   # side by side
    assert page.locator("#card-0 figure.face img").evaluate("i => i.complete && i.naturalWidth") == 480
    page.screenshot(path=str(tmp_path / "whos-who-390.png"))
    page.screenshot(path=str(tmp_path / "whos-who-390-full.png"), full_page=True)
    check_page(page, tmp_path, "whos-who-390-checked")
    phone.close()

    wide, page = open_page(browser, base, 1280, 900)
    page.goto("/login")
    page.fill("#pin", PIN)
    page.click("button:has-text('Unlock')")
    page.wait_for_url("**/")
    page.goto("/whos-who")
    check_page(page, tmp_path, "whos-who-1280")
    # The arrows move between the cards (looking around is not answering: not counted below).
    assert page.locator(".who-card.current").get_attribute("id") == "card-0"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.locator(".who-card.current").get_attribute("id") == "card-2"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowLeft")
    assert page.locator(".who-card.current").get_attribute("id") == "card-0"

    actions = 0

    def press(key: str) -> None:
        nonlocal actions
        actions += 1
        with page.expect_navigation():
            page.keyboard.press(key)

    def choose(select, value: str) -> None:
        nonlocal actions
        actions += 1
        with page.expect_navigation():
            select.select_option(value)

    def click(target) -> None:
        nonlocal actions
        actions += 1
        with page.expect_navigation(timeout=180_000):   # Yes to all: ten answers and releases in one go
            target.click(timeout=180_000)

    groups = [h.split(" (")[0] for h in page.locator(".who-group h2").all_inner_texts()]
    assert groups == ["Ada", "Grace"]
    # Ada's ten faces one by one: eight yes, one no, one is someone else (Cleo, picked from the card's list).
    for i in range(10):
        assert page.locator(".who-card.current h3").inner_text() == "Is this Ada?"
        if i == 4:
            press("n")
        elif i == 7:
            choose(page.locator(".who-card.current select"), "cleo")
        else:
            press("y")
        assert left(page) == 19 - i
        assert not page.errors, page.errors
    page.screenshot(path=str(tmp_path / "whos-who-after-ada.png"), full_page=True)
    # Grace's ten faces at once.
    click(page.locator("button:has-text('Yes to all 10: all Grace')"))
    assert "Nothing left to answer" in page.inner_text("main")
    assert "Yes to all: 10 faces are Grace." in page.inner_text("main")
    page.screenshot(path=str(tmp_path / "whos-who-done.png"), full_page=True)
    assert not page.errors, page.errors
    wide.close()

    answered_one_by_one, groups_at_once = 10, 1
    assert actions == answered_one_by_one + groups_at_once == 11, actions      # 20 faces, 11 actions

    conn = connect(home.database)
    try:
        assert review_queue(home, conn) == []           # every photo was held only to ask: all in Ready to post
        kinds = [(r["kind"], r["child_id"]) for r in conn.execute("SELECT kind, child_id FROM review_edits")]
        assert kinds.count(("confirm", "ada")) == 8 and kinds.count(("confirm", "grace")) == 10
        assert kinds.count(("obscure", None)) == 1 and kinds.count(("confirm", "cleo")) == 1
        actors = {r["actor"] for r in conn.execute("SELECT actor FROM review_decisions WHERE kind = 'released'")}
        assert actors == {"manager"}
    finally:
        conn.close()
    for channel in home.settings.channels:
        assert sorted(p.stem for p in home.outbox_for(channel).iterdir()) == sorted(PHOTOS)
