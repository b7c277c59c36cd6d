"""The results pages in a real browser (Debian's chromium, headless, through chromium-driver),
against `bootbot web` on loopback, over the result folder of a real check and a hostile copy of
it whose subject and console hold HTML. A screenshot of each page is kept under state/screenshots/."""
from __future__ import annotations

import http.client
import json
import select
import shutil
from pathlib import Path

import pytest
import requests
import trees
from harness import EXAMPLE, ROOT, start
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

SHOTS = ROOT / "state" / "screenshots"
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


@pytest.fixture(scope="module")
def results(session_config, tmp_path_factory) -> tuple[Path, str, str]:
    """The session's results, with a real check of the example (a pvh regression) and a copy of
    it made hostile: its subject, author and console hold HTML, its verdict is pass."""
    out = tmp_path_factory.mktemp("web") / "outcome.json"
    checked = trees.Check(EXAMPLE, trees.linux(), session_config, out)
    assert checked.json and checked.json["verdict"] == "regression", checked.stderr
    real = Path(checked.json["folder"])
    hostile = real.with_name(real.name[:-6] + "ffffff")
    shutil.rmtree(hostile, ignore_errors=True)
    shutil.copytree(real, hostile)
    outcome = json.loads((hostile / "outcome.json").read_text())
    outcome["series"].update(subject=f"x86: {HOSTILE}", author=f"Eve {HOSTILE}")
    outcome["verdict"] = "pass"
    outcome["origin"] = {"source": HOSTILE, "archive": "javascript:window.pwned=3//", "link": "javascript:window.pwned=4"}
    (hostile / "outcome.json").write_text(json.dumps(outcome))
    mailed = json.loads((real / "outcome.json").read_text())   # as the list bot records a series from lore
    mailed["origin"] = {"source": "xen-devel", "archive": "https://lore.kernel.org/xen-devel",
                        "link": f"https://lore.kernel.org/xen-devel/{mailed['series']['patches'][0]['msgid']}/"}
    (real / "outcome.json").write_text(json.dumps(mailed))
    with (hostile / outcome["entries"]["pvh"]["log"]).open("a") as console:
        console.write(f"{HOSTILE}\n")
    return real.parent, real.name, hostile.name


@pytest.fixture(scope="module")
def site(results, session_config):
    """`bootbot web` on a free loopback port; its URL once it says it listens (within 30 s)."""
    server = start("web", "--listen", "127.0.0.1:0", config=session_config)
    try:
        ready, _, _ = select.select([server.stderr], [], [], 30)
        line = server.stderr.readline() if ready else ""
        assert line.startswith("bootbot: serving http://"), f"bootbot web said: {line!r}"
        yield line.split()[-1]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def visit(browser, url: str, shot: str) -> str:
    browser.get(url)
    browser.save_screenshot(str(SHOTS / f"{shot}.png"))
    return browser.find_element(By.TAG_NAME, "body").text


def test_the_index_lists_the_checks_and_filters_them(browser, site, results):
    _, real, hostile = results
    shown = visit(browser, site, "index")
    assert "x86/pvh: small clean-ups of the PVH entry" in shown and "regression" in shown
    links = {a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")}
    assert f"{site}checks/{real}" in links and f"{site}checks/{hostile}" in links
    visit(browser, f"{site}?verdict=regression", "index-regression")
    links = {a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")}
    assert f"{site}checks/{real}" in links and f"{site}checks/{hostile}" not in links
    browser.find_element(By.NAME, "verdict").clear()   # the form filters without JavaScript
    browser.find_element(By.NAME, "entry").send_keys("no-such-entry")
    browser.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(browser, 30).until(lambda driver: "entry=no-such-entry" in driver.current_url)
    assert not [a for a in browser.find_elements(By.TAG_NAME, "a") if "/checks/" in a.get_attribute("href")]


def test_a_check_page_shows_the_culprit_and_the_marked_console_line(browser, site, results):
    _, real, _ = results
    shown = visit(browser, f"{site}checks/{real}", "check")
    assert "First bad patch: [2/3] x86/pvh: trap early in pvh_start_xen" in shown
    assert "pvh: triple fault: #UD at pvh_start_xen+0x0" in shown
    assert "Console of pvh with the change: nothing, it stayed silent." in shown
    marked = [m.text for m in browser.find_elements(By.TAG_NAME, "mark")]   # the base's success lines
    assert marked[0].startswith("=> bootbot: userspace reached, nonce ") and all(m.startswith("=> ") for m in marked)
    culprit = browser.find_element(By.ID, "culprit").get_attribute("href")
    assert culprit == "https://lore.kernel.org/xen-devel/7fe17ab77dab866352afb60b6757a3f3cbe0b6b3.1795712149.git.ann@example.org/"
    download = requests.get(f"{site}checks/{real}.tar.gz", timeout=30)
    assert download.status_code == 200 and download.content[:2] == b"\x1f\x8b"
    api = requests.get(f"{site}api/checks/{real}", timeout=30).json()
    assert api["verdict"] == "regression" and api["culprit"]["index"] == 2


def test_html_in_a_subject_or_a_console_shows_as_text(browser, site, results):
    _, _, hostile = results
    for url, shot in ((site, "index-hostile"), (f"{site}checks/{hostile}", "check-hostile")):
        shown = visit(browser, url, shot)
        assert HOSTILE in shown
        assert browser.execute_script("return window.pwned") is None
        assert not browser.find_elements(By.CSS_SELECTOR, "body script, img[src='x'], a[href^='javascript']")


def test_an_entry_page_draws_its_history(browser, site, results):
    _, real, hostile = results
    shown = visit(browser, f"{site}entries/linux/pvh", "entry")
    bars = browser.find_elements(By.CSS_SELECTOR, "svg#history rect")
    assert len(bars) >= 2 and "Longest boot" in shown
    history = requests.get(f"{site}api/entries/linux/pvh", timeout=30).json()
    assert [run["folder"] for run in history][-2:] == sorted([real, hostile])


def test_the_pages_change_nothing_and_read_nothing_outside_the_results(site, results):
    _, real, _ = results
    assert requests.post(site, data={"verdict": "pass"}, timeout=30).status_code == 405
    host = site.removeprefix("http://").rstrip("/")

    def raw(path: str) -> int:   # as sent: requests would remove the dot segments first
        connection = http.client.HTTPConnection(host, timeout=30)
        connection.request("GET", path)
        status = connection.getresponse().status
        connection.close()
        return status

    assert raw(f"/checks/{real}/files/outcome.json") == 200
    assert raw(f"/checks/{real}/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd") == 404
    assert raw(f"/checks/{real}/files/../../../etc/passwd") == 404
    assert raw(f"/checks/{real}/files/%00") == 404
    assert raw("/?page=%C2%B2") == 200 and raw("/?page=99999999999999999999999") == 200
