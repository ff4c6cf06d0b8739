"""Make docs/studio.png: the studio's page of the sample's run, as a person sees it after `make run`.

Starts the host as `make run` does (its own Azurite, the studio, the sample dropped into sales/), on
free ports with a temporary state folder, so a running `make run` is never touched; opens the run's
page in headless chromium (Debian's chromium and chromium-driver, through Selenium from
requirements-dev.txt) and saves it. `make studio-png` runs it; the tests run it in a small window.

    .venv/bin/python docs/studio_png.py [--out docs/studio.png] [--width 1280] [--height 1150]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "sales-2026-q3.xlsx"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_host(state: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    ui = free_port()
    env = {**os.environ, "SHEETDROP_STATE_DIR": str(state), "SHEETDROP_UI_PORT": str(ui),
           "AZURITE_BLOB_PORT": str(free_port()), "AZURITE_QUEUE_PORT": str(free_port()),
           "AZURITE_TABLE_PORT": str(free_port())}
    for name in ("INPUT_STORAGE", "SHEETDROP_BACKEND", "INPUT_CONTAINER", "LOCAL_OUTPUT_CONTAINER", "CLAIMS_CONTAINER"):
        env.pop(name, None)
    with open(log, "wb") as out:
        host = subprocess.Popen([sys.executable, "-m", "sheetdrop_local.cli", "host", "--azurite", "--ui", "--drop",
                                 str(SAMPLE), "--drop-into", "sales"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while "watching for new workbooks" not in log.read_text(errors="replace"):
        if host.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the host did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)
    return host, f"http://127.0.0.1:{ui}"


def screenshot(url: str, out: Path, width: int, height: int, profile: Path) -> str:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(url + "/runs/latest")
        title = driver.find_element(By.TAG_NAME, "h1").text
        driver.save_screenshot(str(out))
        return title
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "studio.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sheetdrop-studio-png-") as tmp:
        root = Path(tmp)
        host, url = start_host(root / "state", root / "host.log")
        try:
            with urllib.request.urlopen(url + "/runs", timeout=10):
                pass
            title = screenshot(url, args.out, args.width, args.height, root / "chromium")
        finally:
            os.killpg(host.pid, signal.SIGINT)  # Ctrl-C: the host stops its Azurite too
            host.wait(60)
    print(f"saved {args.out}: {title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
