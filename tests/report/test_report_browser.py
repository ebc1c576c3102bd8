"""Open the report in headless Chromium: every figure decodes and the key numbers show."""

import json
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.slow


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        )
    pytest.importorskip("selenium", reason="needs selenium (pip install selenium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]:
        options.add_argument(flag)
    # An explicit driver path: selenium never runs Selenium Manager to download one.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.mark.parametrize("which", ["synthetic", "tiny experiment"])
def test_report_renders_in_chromium(browser, which, request):
    """On a synthetic table with every plot (D included) and on a real tiny experiment."""
    from selenium.webdriver.common.by import By

    if which == "synthetic":
        _, index = request.getfixturevalue("synthetic_report")
    else:
        index = Path(request.getfixturevalue("tiny_experiment")[1]["report"])
    summary = json.loads((index.parent / "summary.json").read_text())
    browser.get(index.resolve().as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);"
    )
    assert len(images) == len(list((index.parent / "figures").glob("*.png")))
    assert all(complete and width > 0 for complete, width in images), images
    text = browser.find_element(By.TAG_NAME, "body").text
    for name, headline in summary["metrics"].items():
        assert headline["headline"] in text
        shown = browser.find_element(By.ID, f"headline-spearman-{name}").text
        assert shown == headline["headline"]
    assert browser.find_element(By.ID, "n-conditions").text == str(summary["n_conditions"])
