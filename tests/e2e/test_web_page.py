"""The jeweller's web page in a real headless Chromium (Debian's chromium + chromium-driver)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.names import PackageMetadata
from local_emulation.emulator import EmbeddedEmulator, aws_environment
from local_emulation.gateway import Gateway
from local_emulation.processes import clean_environment, free_port

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
        assert "enter your API key" in refused.text
        browser.find_element(By.ID, "api-key").send_keys("staff-key")
        browser.find_element(By.ID, "price-button").click()
        price = WebDriverWait(browser, 20).until(
            expected_conditions.visibility_of_element_located((By.ID, "price"))
        )
        assert price.text.startswith("$")
        # The key stays in this tab unless the user asks to remember it
        assert (
            browser.execute_script("return sessionStorage.getItem('facet-api-key')") == "staff-key"
        )
        assert browser.execute_script("return localStorage.getItem('facet-api-key')") is None


def test_web_page_shows_dollar_effects_on_one_scale_and_warns_on_dimensions(
    gateway: Gateway, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{gateway.url}/")
    carat = browser.find_element(By.NAME, "carat")
    carat.clear()
    carat.send_keys("1.5")  # the default dimensions are a 0.70 ct stone's
    browser.find_element(By.ID, "price-button").click()
    WebDriverWait(browser, 20).until(
        expected_conditions.visibility_of_element_located((By.ID, "price"))
    )
    warning = browser.find_element(By.ID, "dimension-warning")
    assert warning.is_displayed() and "suggest about 0.70 ct" in warning.text
    rows = browser.find_elements(By.CSS_SELECTOR, "#chart .factor")
    effects = [row.find_element(By.CSS_SELECTOR, ".effect").text for row in rows]
    assert all(e[0] in "+−" and "$" in e for e in effects)
    ends = browser.find_element(By.CSS_SELECTOR, "#chart .bar-scale .ends").text
    assert ends.startswith("÷") and "×" in ends


def test_web_page_clears_the_price_when_the_input_becomes_invalid(
    gateway: Gateway, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{gateway.url}/")
    browser.find_element(By.ID, "price-button").click()
    WebDriverWait(browser, 20).until(
        expected_conditions.visibility_of_element_located((By.ID, "price"))
    )
    depth = browser.find_element(By.NAME, "depth")
    depth.clear()
    depth.send_keys("95")
    result = browser.find_element(By.ID, "result")
    assert "depth" in result.text and not browser.find_elements(By.ID, "price")
    assert not browser.find_elements(By.CSS_SELECTOR, "#chart .factor")


HOSTILE = (
    "<img src=x onerror=\"window.__stolen=sessionStorage.getItem('facet-api-key')"
    "+localStorage.getItem('facet-api-key');document.title='pwned'\">"
    "<script>window.__stolen='script'</script>"
)


def test_a_hostile_model_reason_is_shown_as_text_and_runs_no_script(
    aws_emulator: EmbeddedEmulator, served_model_dir: Path, browser: Any
) -> None:
    """Anyone who may write to the registry controls a reason: it must never become markup."""
    import boto3
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from training import registry
    from training.artifact_store import pack, sha256

    # GIVEN a production model whose approval reason is a script that steals the API key
    group, bucket = "hostile-reason-group", "hostile-reason-artifacts"
    sagemaker, s3 = boto3.client("sagemaker"), boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    registry.ensure_group(sagemaker, group)
    tarball = pack(served_model_dir)
    s3.put_object(Bucket=bucket, Key="m/model.tar.gz", Body=tarball)
    record = registry.register(
        sagemaker,
        group,
        model_data_url=f"s3://{bucket}/m/model.tar.gz",
        image="local",
        metadata={PackageMetadata.ARTIFACT_SHA256.value: sha256(tarball)},
        description="hostile",
    )
    registry.set_status(sagemaker, record, registry.ApprovalStatus.APPROVED, HOSTILE)
    environment = (
        clean_environment()
        | aws_environment()
        | {"FACET_MODEL_PACKAGE_GROUP": group, "FACET_DATA_BUCKET": ""}
    )
    with Gateway(free_port(), workers=1, api_key="staff-key", environment=environment) as keyed:
        # WHEN a jeweller with a key opens the page and the history loads
        browser.get(f"{keyed.url}/")
        browser.find_element(By.ID, "api-key").send_keys("staff-key")
        browser.find_element(By.ID, "remember-key").click()  # even a remembered key is safe
        browser.find_element(By.ID, "price-button").click()
        reason = WebDriverWait(browser, 20).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#history td.reason")
        )
        # THEN the reason is on the page as text, no element came from it, no script ran
        assert reason.text == HOSTILE
        assert not browser.find_elements(By.CSS_SELECTOR, "#history img, #history script")
        assert browser.execute_script("return window.__stolen === undefined")
        assert browser.title == "Facet — diamond prices"
        # AND even markup slipped in by other means could not run inline script (CSP)
        browser.execute_script(
            "const i = document.createElement('img');"
            "i.setAttribute('onerror', 'window.__stolen = 1'); i.src = 'x';"
            "document.body.append(i);"
        )
        WebDriverWait(browser, 5).until(
            lambda d: d.execute_script("return document.querySelector('body > img').complete")
        )
        assert browser.execute_script("return window.__stolen === undefined")
        browser.execute_script("localStorage.clear(); sessionStorage.clear();")


def test_api_docs_render_offline_under_the_content_security_policy(
    gateway: Gateway, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{gateway.url}/docs")
    title = WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title")
    )
    assert "Facet diamond price API" in title.text
    operations = browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    assert {"/v1/prices", "/v1/prices/batch"} <= {o.text.replace("\u200b", "") for o in operations}
