"""Make the README's screenshot of the manager's pages from a demo home (the demo photos are public domain).

    uv run photoguard demo --home /tmp/pg-demo
    uv run python docs/screenshot.py /tmp/pg-demo

Drives Debian's Chromium (/usr/bin/chromium) through Playwright; sets the demo home's PIN on first run.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from photoguard.store.home import open_home
from photoguard.web.app import create_app

PIN = "123456"
PORT = 8479
HERE = Path(__file__).resolve().parent


def main(home_dir: str) -> None:
    home = open_home(home_dir)
    server = uvicorn.Server(uvicorn.Config(create_app(home, port=PORT), host="127.0.0.1", port=PORT, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(base_url=f"http://127.0.0.1:{PORT}", viewport={"width": 1100, "height": 820})
        page.goto("/")
        if page.url.endswith("/setup"):
            page.fill("#pin", PIN)
            page.fill("#repeat", PIN)
            page.click("text=Save the PIN")
        else:
            page.fill("#pin", PIN)
            page.click("button:has-text('Unlock')")
        page.goto("/outbox")
        page.screenshot(path=str(HERE / "serve-ready-to-post.png"))
        browser.close()
    server.should_exit = True


if __name__ == "__main__":
    main(sys.argv[1])
