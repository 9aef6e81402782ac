"""The status page in a real headless browser (Debian chromium + chromedriver,
installed by `make setup`): live values show, and its controls change the
charger (amp and frc)."""
import re
import shutil
import tempfile
import time

import pytest

pytestmark = pytest.mark.e2e

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync")


def _binaries():
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/lib/chromium/chromedriver" if shutil.which("/usr/lib/chromium/chromedriver") else None)
    return chrome, driver


@pytest.fixture
def browser(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium not installed: run make setup")
    chrome, driver = _binaries()
    if not chrome or not driver:
        pytest.skip("chromium/chromium-driver could not be installed (make browser)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for f in CHROME_FLAGS:
        opts.add_argument(f)
    opts.add_argument("--user-data-dir=" + tempfile.mkdtemp(dir=str(tmp_path)))
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def wait_text(browser, elem_id, pred, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        text = browser.find_element("id", elem_id).text
        if pred(text):
            return text
        assert time.monotonic() < deadline, "%s shows %r" % (elem_id, text)
        time.sleep(0.1)


def test_page_shows_live_values(browser, sims, runtime, tmp_path):
    sim = sims(runtime, tmp_path / "flash", sets=['fna="Garage"']).start()
    browser.get(sim.base + "/")
    wait_text(browser, "fna", lambda t: t == "Garage")
    wait_text(browser, "car", lambda t: t == "idle")
    wait_text(browser, "amp", lambda t: t == "16")
    sim.sim_set(ev="B")
    wait_text(browser, "car", lambda t: t == "waiting for car")
    wait_text(browser, "ocpp", lambda t: t == "off")


def test_page_controls_set_amp_and_force_state(browser, sims, runtime, tmp_path):
    sim = sims(runtime, tmp_path / "flash").start()
    browser.get(sim.base + "/")
    wait_text(browser, "amp", lambda t: t == "16")
    box = browser.find_element("id", "ampin")
    box.clear()
    box.send_keys("11")
    browser.find_element("id", "ampset").click()
    sim.wait_status(lambda s: s["amp"] == 11, keys=("amp",), timeout=10)
    wait_text(browser, "amp", lambda t: t == "11")
    browser.find_element("id", "f1").click()
    sim.wait_status(lambda s: s["frc"] == 1, keys=("frc",), timeout=10)
    wait_text(browser, "frc", lambda t: t == "off")
    browser.find_element("id", "f2").click()
    sim.wait_status(lambda s: s["frc"] == 2, keys=("frc",), timeout=10)


def test_page_shows_the_error_of_a_refused_value(browser, sims, runtime, tmp_path):
    sim = sims(runtime, tmp_path / "flash").start()
    browser.get(sim.base + "/")
    wait_text(browser, "amp", lambda t: t == "16")
    box = browser.find_element("id", "ampin")
    box.clear()
    box.send_keys("99")
    browser.find_element("id", "ampset").click()
    wait_text(browser, "msg", lambda t: "out of range" in t)
    assert sim.status("amp") == {"amp": 16}


def _numbers(text):
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", text)]


def test_page_shows_live_changing_values_while_charging(browser, sims, runtime, tmp_path, csms):
    sim = sims(runtime, tmp_path / "flash", url=csms.url(), sets=["acs=1"]).start()
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    sim.sim_set(ev="C")
    sim.sim_set(rfid="CARD1")  # authorized by the CSMS
    csms.wait_received("StartTransaction")
    browser.get(sim.base + "/")
    wait_text(browser, "car", lambda t: t == "charging")
    wait_text(browser, "ocpp", lambda t: t == "connected, accepted")
    wait_text(browser, "acu", lambda t: t == "16")
    wait_text(browser, "cur", lambda t: t.endswith(" A") and len(_numbers(t)) == 3
              and all(abs(a - 16) < 0.5 for a in _numbers(t)))
    pw = wait_text(browser, "pw", lambda t: len(_numbers(t)) == 4 and _numbers(t)[3] > 0)
    assert abs(_numbers(pw)[3] - 3 * 16 * 230) < 0.05 * 3 * 16 * 230, pw
    wh = wait_text(browser, "wh", lambda t: t.isdigit() and int(t) > 0)
    eto = wait_text(browser, "eto", lambda t: t.isdigit() and int(t) > 0)
    # Live: the energy figures move on while it charges.
    wait_text(browser, "wh", lambda t: t.isdigit() and int(t) > int(wh))
    wait_text(browser, "eto", lambda t: t.isdigit() and int(t) > int(eto))
    # A lower current shows as the offer, the measured current and the power.
    assert sim.api_set(amp=10) == (200, {"amp": True})
    wait_text(browser, "acu", lambda t: t == "10")
    wait_text(browser, "cur", lambda t: len(_numbers(t)) == 3 and all(abs(a - 10) < 0.5 for a in _numbers(t)))
    wait_text(browser, "pw", lambda t: len(_numbers(t)) == 4 and abs(_numbers(t)[3] - 3 * 10 * 230) < 0.05 * 6900)
