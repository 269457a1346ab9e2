"""Every page in a real headless Chromium (Debian's, driven by selenium through chromedriver) against real
uvicorn serving the planted database: the key facts appear, the links lead where they say, the browser logs no
error (a Content-Security-Policy violation would be one), and the ``<script>`` table name stays text.

One browser for the session (conftest); every wait is on something observable (WebDriverWait), never a sleep.
"""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pgpulse.sql import redact_url

from .conftest import (
    LAPTOP,
    N_PLUS_ONE,
    PHONE,
    SCRIPT_TABLE,
    SECRET_IN_SESSION,
    SECRET_LITERAL,
    SECRET_PARAMETER,
    Site,
    body,
    no_console_errors,
    open_page,
    shoot,
)


def test_overview_shows_headline_numbers_and_the_doctors_findings(
    site: Site, browser: WebDriver, screenshots: Path
) -> None:
    open_page(browser, site.base + "/", "Overview")
    assert browser.find_element(By.ID, "db-size").text.endswith("MB")
    assert browser.find_element(By.ID, "cache-hit").text.endswith("%")
    text = body(browser)
    # the doctor's findings for what was planted, grouped by severity
    assert "Critical" in text and "dupvals_v_key" in text
    assert "orders_customer_dup is a left prefix of orders_customer_created" in text
    shoot(browser, screenshots, "overview")
    no_console_errors(browser)


def test_queries_lists_normalized_text_with_sparklines_and_links_to_the_plan(
    site: Site, browser: WebDriver, screenshots: Path
) -> None:
    open_page(browser, site.base + "/queries", "Queries")
    table = browser.find_element(By.ID, "queries")
    assert "SELECT count(*) FROM orders WHERE note = $1" in table.text
    assert SECRET_LITERAL not in browser.page_source  # the parameter's value never reaches a page
    assert "pgpulse:dashboard" not in browser.page_source  # the dashboard's own queries are left out
    row = table.find_element(By.XPATH, ".//tr[td//code[contains(., 'WHERE note LIKE $1')]]")
    assert len(row.find_elements(By.CSS_SELECTOR, "svg.spark")) == 2  # calls and mean time, from the store
    shoot(browser, screenshots, "queries")
    no_console_errors(browser)

    row.find_element(By.TAG_NAME, "a").click()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.ID, "plan")))
    assert browser.find_element(By.ID, "statement").text == "SELECT count(*) FROM orders WHERE note LIKE $1"
    plan = browser.find_element(By.ID, "plan")
    # 5,000 rows and no usable index for LIKE '%…%': the scan of orders is the costly node
    costly = plan.find_elements(By.CSS_SELECTOR, "li.costly > .node")
    assert [c.text for c in costly] == ["Seq Scan"]
    assert "Relation Name: orders" in plan.text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#history svg.chart")) == 2
    # no HypoPG on this server: the advisor's hand-off is the command to run, and why
    queryid = browser.current_url.rsplit("/", 1)[1]
    assert browser.find_element(By.ID, "advice-command").text == (
        f"pgpulse advise {redact_url(site.database_url)} --queryid {queryid} -v"
    )
    assert "HypoPG is not enabled in this database" in browser.find_element(By.ID, "advice-reason").text
    assert browser.find_elements(By.ID, "ask-advisor") == []
    shoot(browser, screenshots, "query")
    no_console_errors(browser)


def test_indexes_shows_unused_duplicate_and_invalid(site: Site, browser: WebDriver, screenshots: Path) -> None:
    open_page(browser, site.base + "/", "Overview")
    browser.find_element(By.LINK_TEXT, "Indexes").click()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.ID, "invalid")))
    names = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "#unused tbody tr td:first-child")}
    assert names == {"orders_created_unused", "orders_customer_dup", "orders_customer_created"}
    dup = browser.find_elements(By.CSS_SELECTOR, "#duplicate tbody tr")
    assert [[c.text for c in r.find_elements(By.TAG_NAME, "td")][:3] for r in dup] == [
        ["orders_customer_dup", "orders_customer_created", "public.orders"]
    ]
    invalid = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#invalid tbody tr td:first-child")]
    assert invalid == ["dupvals_v_key"]
    assert browser.find_element(By.ID, "advised-command").text == (
        f"pgpulse advise {redact_url(site.database_url)} --top 20 -v"
    )
    shoot(browser, screenshots, "indexes")
    no_console_errors(browser)


def test_tables_shows_dead_rows_settings_and_the_script_name_as_text(
    site: Site, browser: WebDriver, screenshots: Path
) -> None:
    open_page(browser, site.base + "/tables", "Tables")
    row = browser.find_element(By.XPATH, "//table[@id='tables']//tr[td[1][text()='public.dead_rows']]")
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    # name, size, growth, live, dead, dead share, bloat, last vacuum, last analyze, settings
    assert cells[3:6] == ["400", "600", "60.0 %"]
    assert cells[9] == "autovacuum_enabled=false"
    assert f"public.{SCRIPT_TABLE}" in body(browser)  # shown as text...
    assert browser.execute_script("return window.__pwned === undefined") is True  # ...and never run
    shoot(browser, screenshots, "tables")
    browser.set_window_size(*PHONE)
    try:
        open_page(browser, site.base + "/tables", "Tables")
        shoot(browser, screenshots, "tables-phone")
    finally:
        browser.set_window_size(*LAPTOP)
    no_console_errors(browser)


def test_connections_shows_the_lock_chain_and_the_session_idle_in_transaction(
    site: Site, browser: WebDriver, screenshots: Path
) -> None:
    open_page(browser, site.base + "/connections", "Connections")
    chain = browser.find_elements(By.CSS_SELECTOR, "#locks tbody tr")
    assert [[c.text for c in r.find_elements(By.TAG_NAME, "td")][:2] for r in chain] == [
        [str(site.waiter_pid), str(site.holder_pid)]
    ]
    idle = browser.find_elements(By.CSS_SELECTOR, "#idle tbody tr td:first-child")
    assert [e.text for e in idle] == [str(site.holder_pid)]
    assert SECRET_IN_SESSION not in browser.page_source  # pg_stat_activity's literal is redacted
    sizing = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#sizing strong")]
    assert len(sizing) == 1
    assert sizing[0].startswith("50 workers × (pool_size 5 + max_overflow 0) = 250 connections vs ")
    assert sizing[0].endswith(" usable under the server: the pools cannot all fill")
    shoot(browser, screenshots, "connections")
    no_console_errors(browser)


def test_requests_lists_profiled_requests_and_shows_the_n_plus_one_with_its_fix(site: Site, browser: WebDriver) -> None:
    open_page(browser, site.base + "/", "Overview")
    browser.find_element(By.LINK_TEXT, "Requests").click()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.ID, "most-queries")))
    recent = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#recent tbody td:first-child")]
    assert recent == ["GET /search", "GET /customers/{id}/orders"]  # newest first
    most = browser.find_elements(By.CSS_SELECTOR, "#most-queries tbody tr")
    # queries, N+1, unused eager, new connections (a pooled engine whose connection opened before either request)
    assert [[c.text for c in r.find_elements(By.TAG_NAME, "td")][3:] for r in most] == [
        [str(N_PLUS_ONE), "1", "0", "0"],
        ["1", "0", "0", "0"],
    ]
    browser.find_element(By.LINK_TEXT, "GET /customers/{id}/orders").click()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.ID, "nplusone")))
    assert browser.find_element(By.ID, "query-count").text == str(N_PLUS_ONE)
    finding = browser.find_element(By.ID, "nplusone").text
    assert f"N+1: the same query ran {N_PLUS_ONE} times" in finding and "fix:" in finding
    statements = browser.find_elements(By.CSS_SELECTOR, "#request-queries td.sql")
    assert {s.text for s in statements} == {"SELECT note FROM orders WHERE id = %(c)s"}
    assert len(statements) == N_PLUS_ONE
    open_page(browser, site.base + "/requests", "Requests")
    browser.find_element(By.LINK_TEXT, "GET /search").click()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.ID, "request-queries")))
    assert SECRET_PARAMETER not in browser.page_source  # the profiler logged it; the ring never copied it
    no_console_errors(browser)
