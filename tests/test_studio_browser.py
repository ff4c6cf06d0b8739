"""The studio in a real headless browser (Debian's chromium through chromium-driver, with Selenium)
against a real `sheetdrop host --azurite --ui`: what a person watching their drops sees.

The steps: a completed run in the list; a second drop and a failed one appear and finish while the
page stays open (no reload); the run's page has its log and its dataset versions; a dataset version
shows its preview rows, and the next version the schema change; the failed run shows its reason.
Then what keeps it safe on a shared machine (its headers, a foreign Host, a huge run id), and the
command that makes docs/studio.png.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE
from local_host import host_env, stop_azurite, wait_for
from sheetdrop_local.azurite import free_port

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
Q4 = REPO / "samples" / "sales-2026-q4.xlsx"

if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()) and os.environ.get("CI") != "true":
    pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real host with Azurite and the studio, as `make run` starts them; its URL and environment."""
    env, settings = host_env(tmp_path / "state")
    env["SHEETDROP_UI_PORT"] = str(free_port())
    url = f"http://127.0.0.1:{env['SHEETDROP_UI_PORT']}"
    with open(tmp_path / "host.log", "ab") as log:
        host = subprocess.Popen([sys.executable, "-m", "sheetdrop_local.cli", "host", "--azurite", "--ui",
                                 "--poll-interval", "0.2"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: _answers(url) or host.poll() is not None, 60, "the studio to answer")
        assert host.poll() is None, (tmp_path / "host.log").read_text()
        yield url, env
    finally:
        if host.poll() is None:
            os.killpg(host.pid, signal.SIGINT)
            host.wait(60)
        stop_azurite(settings)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/runs", timeout=2) as page:
            return page.status == 200
    except OSError:
        return False


#: A name that is not the studio's, which this browser resolves to 127.0.0.1, as a DNS-rebinding page's would be.
FOREIGN = "evil.example"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,2000", f"--user-data-dir={tmp_path / 'chromium'}",
                 f"--host-resolver-rules=MAP {FOREIGN} 127.0.0.1"):
        options.add_argument(flag)
    # The console is read back: a policy violation is logged there.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def drop(env: dict[str, str], path: Path, blob: str, *wait: str) -> None:
    subprocess.run([sys.executable, "-m", "sheetdrop_local.cli", "drop", str(path), "--as", blob, *wait],
                   cwd=REPO, env=env, check=True, capture_output=True, timeout=120)


def until(driver: WebDriver, condition: Callable[[WebDriver], object], what: str, timeout: float = 30) -> object:
    # The run list swaps its live part every few seconds: an element read during a swap goes stale.
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, f"timed out waiting for {what}")


def click(driver: WebDriver, by: str, value: str) -> None:
    until(driver, lambda d: d.find_element(by, value).click() or True, f"{value} to click")


#: The run list read in one go inside the page (so a refresh cannot cut it in half): blob -> column -> text.
READ_RUNS = """
const heads = [...document.querySelectorAll('#runs thead th')].map(th => th.innerText.trim());
return [...document.querySelectorAll('#runs tbody tr')].map(
    tr => Object.fromEntries([...tr.querySelectorAll('td')].map((td, i) => [heads[i], td.innerText.trim()])));
"""


def run_rows(driver: WebDriver) -> dict[str, dict[str, str]]:
    rows = {}
    for cells in driver.execute_script(READ_RUNS):
        blob, _, etag = cells["Blob"].partition("\n")
        rows[blob] = cells | {"Blob": blob, "ETag": etag.removeprefix("etag ")}
    return rows


def test_watching_runs_and_datasets_in_the_studio(studio: tuple[str, dict[str, str]], browser: WebDriver,
                                                  tmp_path: Path) -> None:
    url, env = studio
    drop(env, SAMPLE, "sales/2026-q3.xlsx", "--wait", "90")

    # 1. The run list shows the completed run, with what it made.
    browser.get(url + "/")
    q3 = run_rows(browser)["input/sales/2026-q3.xlsx"]
    assert q3["Status"] == "completed" and q3["Sheets"] == "3" and q3["Rows"] == "250"
    assert q3["Datasets"] == "sales_orders:1, sales_products:1, sales_targets:1"
    assert q3["ETag"].startswith('"0x') and q3["Duration"].endswith(" s")

    # 2. Two more drops while the page stays open: they appear and finish without a reload.
    browser.execute_script("window.stillTheSamePage = true;")
    csv = tmp_path / "prices.xlsx"
    csv.write_bytes(b"sku,price\nA,1\n")
    drop(env, Q4, "sales/2026-q4.xlsx")
    drop(env, csv, "sales/prices.xlsx")
    until(browser, lambda d: run_rows(d).get("input/sales/2026-q4.xlsx", {}).get("Status") == "completed"
          and run_rows(d).get("input/sales/prices.xlsx", {}).get("Status") == "failed", "both new runs to end")
    assert browser.execute_script("return window.stillTheSamePage === true;"), "the page was reloaded"
    failed = run_rows(browser)["input/sales/prices.xlsx"]
    assert failed["Reason"].startswith("not-a-workbook: the file is a text file")

    # 3. The first run's page: its lineage, its log, its dataset versions.
    click(browser, By.LINK_TEXT, q3["Run"])
    until(browser, lambda d: "extract sales/2026-q3.xlsx" in d.find_element(By.TAG_NAME, "h1").text, "the run page")
    log = browser.find_element(By.ID, "log").text
    assert log.startswith("$ extract.py --input_account ") and "dataset: sales_orders" in log
    versions = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#lineage a.version-link")]
    assert versions == ["sales_orders:1", "sales_products:1", "sales_targets:1"]
    sheets = browser.find_element(By.ID, "sheets").text
    assert "Orders sales_orders:1 240 8" in sheets

    # 4. A dataset version: its preview rows; the next version: the schema change.
    browser.find_element(By.CSS_SELECTOR, "#lineage a.version-link").click()
    until(browser, lambda d: "sales_orders version 1" in d.find_element(By.TAG_NAME, "h1").text, "version 1")
    preview = browser.find_elements(By.CSS_SELECTOR, "#preview tbody tr")
    assert len(preview) == 20
    assert preview[0].text.split()[:3] == ["10001", "2026-09-17", "00:00:00"]
    browser.find_element(By.CSS_SELECTOR, "#history a[href='/datasets/sales_orders/2']").click()
    until(browser, lambda d: "sales_orders version 2" in d.find_element(By.TAG_NAME, "h1").text, "version 2")
    assert browser.find_element(By.ID, "changes").text == "added Discount (float64)"
    assert browser.find_elements(By.CSS_SELECTOR, "#preview tbody tr")[0].text.split()[0] == "10241"
    assert "Discount" in [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#preview thead th")]

    # 5. The failed run's reason, from the list.
    click(browser, By.LINK_TEXT, "Runs")
    until(browser, lambda d: "input/sales/prices.xlsx" in run_rows(d), "the run list")
    click(browser, By.LINK_TEXT, run_rows(browser)["input/sales/prices.xlsx"]["Run"])
    reason = until(browser, lambda d: d.find_elements(By.ID, "reason"), "the failed run's page")
    assert reason[0].text.startswith("Failed: not-a-workbook: the file is a text file")  # type: ignore[index]


def response_headers(driver: WebDriver, url: str) -> dict[str, str]:
    """The headers the browser receives with ``url``, read by the page itself (same origin: all of them)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {cache: 'no-store'}).then(r => done(Object.fromEntries(r.headers.entries())));", url)


def policy_blocks_inline_code(driver: WebDriver) -> bool:
    """Whether the page's policy stops an inline handler that found its way into the page."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.ran = false;"
        "document.addEventListener('securitypolicyviolation', e => done(!window.ran && e.violatedDirective), "
        "{once: true});"
        "const img = document.createElement('img'); img.setAttribute('onerror', 'window.ran = true');"
        "img.src = '/no-such-image'; document.body.appendChild(img);"
        "setTimeout(() => done(false), 3000);")


SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def test_the_studio_is_safe_on_a_shared_machine(studio: tuple[str, dict[str, str]], browser: WebDriver,
                                                 tmp_path: Path) -> None:
    """On b5e30cf the pages had no Content-Security-Policy, X-Content-Type-Options or X-Frame-Options,
    a page reached under a foreign name (DNS rebinding) was served, and a run id of 60,000 characters
    was an HTTP 500 with a traceback in the host's terminal."""
    url, env = studio
    drop(env, SAMPLE, "sales/2026-q3.xlsx", "--wait", "90")
    browser.get(url + "/runs")
    for page in ("/runs", "/runs/latest", "/datasets/sales_orders/1", "/static/studio.js", "/nowhere"):
        assert {k: response_headers(browser, url + page).get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, page
    assert policy_blocks_inline_code(browser) in ("script-src-attr", "script-src")
    browser.get_log("browser")  # that violation was ours; the pages themselves must cause none
    # Under that policy the pages still work: the status filter applies on its own (no inline handler).
    browser.get(url + "/runs")
    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("completed")
    until(browser, lambda d: "status=completed" in d.current_url, "the filter to apply")
    assert list(run_rows(browser)) == ["input/sales/2026-q3.xlsx"]
    violations = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert violations == []

    # The same studio under a foreign name: refused, with nothing of its data, and the setting named.
    port = url.rsplit(":", 1)[1]
    browser.get(f"http://{FOREIGN}:{port}/runs/latest/log")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert body.startswith(f"This studio answers to localhost and IP addresses, not to '{FOREIGN}'")
    assert "SHEETDROP_UI_HOSTS" in body and "$ extract.py" not in body
    assert response_headers(browser, f"http://{FOREIGN}:{port}/runs/latest/log")["x-frame-options"] == "DENY"
    assert browser.execute_script("return document.title") == ""  # a plain-text refusal, not a studio page

    # A run id of 60,000 characters: not found, and no traceback in the host's terminal.
    browser.get(url + "/runs/" + "a" * 60_000)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
    log = (tmp_path / "host.log").read_text()
    assert "Traceback" not in log and "OperationalError" not in log, log


def test_docs_studio_png_is_made_by_its_command(tmp_path: Path) -> None:
    """`make studio-png` runs docs/studio_png.py; here in a small window, into a scratch file."""
    out = tmp_path / "studio.png"
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "studio_png.py"), "--out", str(out), "--width", "800",
                           "--height", "600"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == f"saved {out}: extract sales/sales-2026-q3.xlsx completed\n"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") == 800
    assert "studio-png:" in (REPO / "Makefile").read_text() and "`make studio-png`" in (REPO / "README.md").read_text()
