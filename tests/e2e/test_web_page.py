"""The jeweller's web page in a real headless Chromium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_emulation.emulator import free_port
from local_emulation.gateway import Gateway

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def gateway(served_model_dir: Path) -> Iterator[Gateway]:
    with Gateway.for_local_model(served_model_dir, free_port(), workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # No skip: CI installs Debian's chromium and chromium-driver (.ci/run); without them this fails.
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="facet-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_web_page_prices_a_stone_and_explains_it(
    gateway: Gateway, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(f"{gateway.url}/")
    carat = browser.find_element(By.NAME, "carat")
    carat.clear()
    carat.send_keys("1.01")
    for name, value in (("x", "6.4"), ("y", "6.37"), ("z", "3.97")):
        field = browser.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    Select(browser.find_element(By.NAME, "cut")).select_by_visible_text("Premium")
    Select(browser.find_element(By.NAME, "clarity")).select_by_visible_text("SI1")
    browser.find_element(By.ID, "price-button").click()
    price = WebDriverWait(browser, 20).until(
        expected_conditions.visibility_of_element_located((By.ID, "price"))
    )
    amount = float(price.text.replace("$", "").replace(",", ""))
    assert 2_000 < amount < 15_000
    factors = browser.find_elements(By.CSS_SELECTOR, "#chart .factor")
    assert {f.get_attribute("data-factor") for f in factors} == {
        "size",
        "cut",
        "color",
        "clarity",
        "depth",
        "table",
    }
    browser.save_screenshot(str(tmp_path / "web_page.png"))
    if os.environ.get("FACET_SCREENSHOT"):
        browser.save_screenshot(os.environ["FACET_SCREENSHOT"])


def test_web_page_shows_the_api_error_for_bad_input(gateway: Gateway, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{gateway.url}/")
    # bypass the form's own limits to reach the API with an impossible stone
    browser.execute_script("document.querySelector('[name=depth]').removeAttribute('max');")
    depth = browser.find_element(By.NAME, "depth")
    depth.clear()
    depth.send_keys("95")
    browser.find_element(By.ID, "price-button").click()
    result = WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#result.error")
    )
    assert "depth" in result.text and "80" in result.text


def test_web_page_sends_the_api_key_the_cloud_api_requires(
    served_model_dir: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    with Gateway.for_local_model(
        served_model_dir, free_port(), workers=1, api_key="staff-key"
    ) as keyed:
        browser.get(f"{keyed.url}/")
        browser.find_element(By.ID, "price-button").click()
        refused = WebDriverWait(browser, 20).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#result.error")
        )
        assert "403" in refused.text or "Forbidden" in refused.text
        browser.find_element(By.ID, "api-key").send_keys("staff-key")
        browser.find_element(By.ID, "price-button").click()
        price = WebDriverWait(browser, 20).until(
            expected_conditions.visibility_of_element_located((By.ID, "price"))
        )
        assert price.text.startswith("$")
