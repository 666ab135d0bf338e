"""The trace explorer and the page's layout in a real headless Chromium at a phone, a laptop and a
desktop width: no horizontal page scroll, a failed task's exception and stack trace, filtering to
one agent, deep links, keyboard operation, bars at their true scale."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, set_span_in_context
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from otel_agentmon._names import semconv as sc
from otel_agentmon.serve import ServeConfig, Server
from tests.support.browser import capture_errors, chromium, page_errors, set_viewport
from tests.support.polling import wait_for
from tests.test_explorer_api import failed_task
from tests.test_serve import PB, agent_spans, body_of, post

pytestmark = pytest.mark.subprocess
WIDTHS = (420, 1024, 1600)

#: Where the page is wider than the viewport: the document's scroll width, and every element
#: reaching past the right edge that is not inside a box that scrolls or clips it (a table that
#: scrolls in its panel is fine; one that widens the page is not).
LAYOUT = """
const w = document.documentElement.clientWidth;
const out = [];
for (const e of document.querySelectorAll('body *')) {
  const r = e.getBoundingClientRect();
  if (!r.width || r.right <= w + 1) continue;
  let p = e.parentElement, held = false;
  for (; p && p !== document.body; p = p.parentElement) {
    if (/(auto|scroll|hidden)/.test(getComputedStyle(p).overflowX)) { held = true; break; }
  }
  const what = `${e.tagName.toLowerCase()}#${e.id}.${e.getAttribute('class') || ''}`;
  if (!held) out.push(`${what} right=${Math.round(r.right)}`);
}
return {scroll: document.documentElement.scrollWidth, width: window.innerWidth, wide: out.slice(0, 10)};
"""


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server(ServeConfig(port=0, trace_link_template="http://jaeger:16686/trace/{trace_id}")) as srv:
        for spans in (agent_spans(3, agent="researcher"), agent_spans(2, agent="writer", fail=True), failed_task(),
                      scaled_trace(), relayed_failure()):
            assert post(srv, "/v1/traces", body_of(spans), {"Content-Type": PB})[0] == 200
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    capture_errors(driver)
    try:
        yield driver
    finally:
        driver.quit()


def scaled_trace() -> list[ReadableSpan]:
    """A 15.8 s agent run whose one task took 7 s, from 1 s to 8 s."""
    mem = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "timing"}))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("plain.sdk")
    t0 = 1_700_000_000 * 10**9
    root = tracer.start_span("invoke_agent slowpoke", start_time=t0, attributes={
        sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: "slowpoke"})
    task = tracer.start_span("task ponder", context=set_span_in_context(root), start_time=t0 + 10**9, attributes={
        sc.AGENTMON_TASK_TYPE: "ponder", sc.GEN_AI_AGENT_NAME: "slowpoke"})
    task.end(end_time=t0 + 8 * 10**9)
    root.end(end_time=t0 + 15_800_000_000)
    provider.shutdown()
    return list(mem.get_finished_spans())


def relayed_failure() -> list[ReadableSpan]:
    """A failed task whose own span says only "error" (another instrumentation's way): the
    exception was recorded on the tool call under it."""
    mem = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "relay"}))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("other.instrumentation")
    task = tracer.start_span("task relay", attributes={sc.AGENTMON_TASK_TYPE: "relay", sc.GEN_AI_AGENT_NAME: "relay"})
    tool = tracer.start_span("execute_tool forward", context=set_span_in_context(task), attributes={
        sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "forward",
        sc.GEN_AI_INPUT_MESSAGES: '[{"role":"user","parts":[{"type":"text","content":"send it on"}]}]'})
    try:
        raise ConnectionError("peer reset the connection")
    except ConnectionError as exc:
        tool.record_exception(exc)
    tool.set_status(Status(StatusCode.ERROR))
    tool.end()
    task.set_status(Status(StatusCode.ERROR))
    task.end()
    provider.shutdown()
    return list(mem.get_finished_spans())


def ids(server: Server, **params: str) -> list[dict[str, Any]]:
    import json
    import urllib.parse
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/api/search?{urllib.parse.urlencode(params)}", timeout=10) as resp:
        rows: list[dict[str, Any]] = json.loads(resp.read())["rows"]
    return rows


#: Clicks the first task in the list named ``arguments[0]``, once the list holds only failed tasks.
CLICK_TASK = """
const rows = [...document.querySelectorAll('#trace-list tbody tr')];
if (!rows.length || rows.some((tr) => !tr.querySelector('td.status.bad'))) return false;
const a = rows.map((tr) => tr.querySelector('td.name a')).find((a) => a.textContent === arguments[0]);
if (!a) return false;
a.click();
return true;
"""


def open_page(browser: WebDriver, url: str, width: int) -> None:
    set_viewport(browser, width)
    browser.get(url)
    assert wait_for(lambda: browser.execute_script("return window.agentmonReady === true"), timeout=15)


def detail_text(browser: WebDriver) -> str:
    text: str = browser.execute_script("return document.getElementById('detail').innerText")
    return text


def tree_rows(browser: WebDriver) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = browser.execute_script("""
        return [...document.querySelectorAll('#tv-rows .tv-row')].map((r) => ({span: r.dataset.span,
          name: r.querySelector('.tv-label').textContent, selected: r.getAttribute('aria-selected') === 'true',
          expanded: r.getAttribute('aria-expanded')}));""")
    return rows


def assert_fits(browser: WebDriver, where: str) -> None:
    layout = browser.execute_script(LAYOUT)
    assert layout["scroll"] <= layout["width"] and not layout["wide"], (where, layout)


@pytest.mark.parametrize("width", WIDTHS)
def test_no_horizontal_page_scroll_on_any_view(server: Server, browser: WebDriver, width: int) -> None:
    open_page(browser, server.url + "/", width)
    # the overview once its tables have filled (4 agents, the tasks list)
    assert wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#agents tbody tr")) == 5, timeout=15)
    assert wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#traces tbody tr"), timeout=15)
    assert_fits(browser, "overview")
    def error_rates() -> list[str]:  # the column's cells that have a number (read in the page at once)
        cells: list[str] = browser.execute_script(
            "return [...document.querySelectorAll('#agents tbody td:nth-child(9)')].map((td) => td.textContent)")
        return [c for c in cells if c != "\u2013"]

    assert wait_for(lambda: len(error_rates()) >= 3, timeout=15)
    assert all(re.fullmatch(r"\d+\.\d%", e) for e in error_rates()), error_rates()  # "x.y%": one format
    icon = browser.find_element(By.CSS_SELECTOR, "link[rel=icon]").get_attribute("href")
    assert icon is not None and icon.startswith("data:image/svg")  # a favicon, inline
    task = ids(server, agent="fetcher", task_type="fetch")[0]
    open_page(browser, server.url + "/traces", width)
    assert wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#trace-list tbody tr")) >= 8, timeout=15)
    assert_fits(browser, "trace list")
    open_page(browser, f"{server.url}/traces/{task['trace_id']}?span={task['span_id']}", width)
    assert wait_for(lambda: "upstream timed out" in detail_text(browser), timeout=15)
    assert_fits(browser, "trace")
    assert page_errors(browser) == []  # e.g. no TypeError from an empty first stream message


@pytest.mark.parametrize("width", WIDTHS)
def test_opening_a_failed_task_shows_its_exception_message_and_stack_trace(server: Server, browser: WebDriver,
                                                                           width: int) -> None:
    open_page(browser, server.url + "/traces", width)
    Select(browser.find_element(By.NAME, "status")).select_by_value("error")
    # (the list is re-rendered as answers arrive: the link is found and clicked in one step)
    assert wait_for(lambda: browser.execute_script(CLICK_TASK, "task fetch"), timeout=15)
    assert wait_for(lambda: "TimeoutError: upstream timed out" in detail_text(browser), timeout=15)
    text = detail_text(browser)
    assert "Traceback (most recent call last)" in text and "raise TimeoutError(message)" in text
    task = ids(server, agent="fetcher", task_type="fetch")[0]
    assert browser.current_url == f"{server.url}/traces/{task['trace_id']}?span={task['span_id']}"
    selected = [r for r in tree_rows(browser) if r["selected"]]
    assert [r["name"] for r in selected] == ["task fetch"]
    # the failed span's attributes, events, links and resource are there too
    assert "long.text" in text and "checkpoint" in text and "why" in text and "deployment.environment" in text
    ext = browser.find_element(By.ID, "trace-external")
    assert ext.is_displayed() and ext.get_attribute("href") == f"http://jaeger:16686/trace/{task['trace_id']}"


@pytest.mark.parametrize("width", WIDTHS)
def test_filtering_to_one_agent_shows_only_its_traces(server: Server, browser: WebDriver, width: int) -> None:
    open_page(browser, server.url + "/traces", width)

    def agents() -> list[str]:
        found: list[str] = browser.execute_script(
            "return [...document.querySelectorAll('#trace-list tbody tr')].map((tr) => tr.dataset.agent)")
        return found

    assert wait_for(lambda: {"researcher", "writer", "fetcher"} <= set(agents()), timeout=15)
    select = Select(browser.find_element(By.NAME, "agent"))
    select.select_by_value("writer")
    assert wait_for(lambda: agents() == ["writer"] * 3, timeout=15)  # its agent run and its 2 tasks
    assert "agent=writer" in browser.current_url
    # the filtered list is a link: opened afresh, it shows the same
    open_page(browser, browser.current_url, width)
    assert wait_for(lambda: agents() == ["writer"] * 3, timeout=15)
    assert Select(browser.find_element(By.NAME, "agent")).first_selected_option.get_attribute("value") == "writer"


@pytest.mark.parametrize("width", WIDTHS)
def test_a_deep_link_opens_the_right_span(server: Server, browser: WebDriver, width: int) -> None:
    task = ids(server, agent="fetcher", task_type="fetch")[0]
    import json
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/api/trace/{task['trace_id']}", timeout=10) as resp:
        tool = next(s for s in json.loads(resp.read())["spans"] if s["name"] == "execute_tool lookup")
    open_page(browser, f"{server.url}/traces/{task['trace_id']}?span={tool['span_id']}", width)
    assert wait_for(lambda: [r["span"] for r in tree_rows(browser) if r["selected"]] == [tool["span_id"]], timeout=15)
    assert wait_for(lambda: detail_text(browser).startswith("execute_tool lookup"), timeout=15)  # fetched apart
    assert browser.find_element(By.ID, "tv").get_attribute("aria-activedescendant") == f"tv-{tool['span_id']}"
    browser.execute_script("window.before = document.getElementById('tv-rows').firstChild")
    browser.find_element(By.ID, "trace-reload").click()  # fetched again; the same span stays selected
    assert wait_for(lambda: browser.execute_script(
        "return document.getElementById('tv-rows').firstChild !== window.before"), timeout=15)
    assert wait_for(lambda: [r["span"] for r in tree_rows(browser) if r["selected"]] == [tool["span_id"]], timeout=15)


def test_the_tree_and_the_list_work_from_the_keyboard(server: Server, browser: WebDriver) -> None:
    task = ids(server, agent="fetcher", task_type="fetch")[0]
    open_page(browser, f"{server.url}/traces/{task['trace_id']}", 1024)
    assert wait_for(lambda: [r["name"] for r in tree_rows(browser) if r["selected"]] == ["invoke_agent fetcher"],
                    timeout=15)
    browser.execute_script("document.getElementById('tv').focus()")  # as Tab would
    tree = browser.switch_to.active_element
    assert tree.get_attribute("id") == "tv"
    tree.send_keys(Keys.ARROW_DOWN)
    assert wait_for(lambda: detail_text(browser).startswith("task fetch"), timeout=10)
    tree.send_keys(Keys.ARROW_LEFT)  # collapses the task: its tool call is hidden
    shown = ["invoke_agent fetcher", "task fetch"]
    assert wait_for(lambda: [r["name"] for r in tree_rows(browser)] == shown, timeout=10)
    assert tree_rows(browser)[1]["expanded"] == "false"
    tree.send_keys(Keys.ARROW_RIGHT)
    assert wait_for(lambda: len(tree_rows(browser)) == 3, timeout=10)
    tree.send_keys(Keys.ARROW_DOWN)
    assert wait_for(lambda: detail_text(browser).startswith("execute_tool lookup"), timeout=10)
    tree.send_keys(Keys.ARROW_LEFT)  # a leaf: to its parent
    assert wait_for(lambda: detail_text(browser).startswith("task fetch"), timeout=10)
    # the list: arrows move between tasks, Enter opens one
    open_page(browser, server.url + "/traces?agent=researcher", 1024)
    links = "#trace-list tbody td.name a"
    assert wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, links)) == 4, timeout=15)
    hrefs = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, links)]
    browser.execute_script(f"document.querySelector('{links}').focus()")
    focused = "return document.activeElement.href"
    assert browser.execute_script(focused) == hrefs[0]
    browser.switch_to.active_element.send_keys(Keys.ARROW_DOWN)
    assert wait_for(lambda: browser.execute_script(focused) == hrefs[1], timeout=5)  # (kept across a refresh)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert wait_for(lambda: browser.current_url == hrefs[1] and tree_rows(browser), timeout=15)


def test_every_span_is_drawn_at_its_true_start_and_duration(server: Server, browser: WebDriver) -> None:
    [run] = ids(server, agent="slowpoke", task_type="invoke_agent")
    open_page(browser, f"{server.url}/traces/{run['trace_id']}", 1600)
    assert wait_for(lambda: len(tree_rows(browser)) == 2, timeout=15)
    bars: list[dict[str, float]] = browser.execute_script("""
        return [...document.querySelectorAll('#tv-rows .tv-row')].map((r) => {
          const t = r.querySelector('.tv-track').getBoundingClientRect();
          const b = r.querySelector('.tv-bar').getBoundingClientRect();
          return {left: (b.left - t.left) / t.width, width: b.width / t.width};});""")
    agent, task = bars
    assert agent["left"] == pytest.approx(0, abs=0.01) and agent["width"] == pytest.approx(1, abs=0.01)
    assert task["left"] == pytest.approx(1 / 15.8, abs=0.01) and task["width"] == pytest.approx(7 / 15.8, abs=0.01)
    ticks = browser.find_element(By.ID, "tv-ticks").text.split()
    assert ticks[:2] == ["0", "s"] and "10" in ticks  # a time axis in seconds across the whole run


def test_a_failed_span_without_an_exception_shows_the_one_raised_under_it(server: Server, browser: WebDriver) -> None:
    [task] = ids(server, agent="relay", task_type="relay")
    open_page(browser, f"{server.url}/traces/{task['trace_id']}?span={task['span_id']}", 1024)
    assert wait_for(lambda: "ConnectionError: peer reset the connection" in detail_text(browser), timeout=15)
    assert detail_text(browser).startswith("task relay") and "raised in execute_tool forward" in detail_text(browser)
    browser.find_element(By.CSS_SELECTOR, "#detail .dp-exception button").click()  # to the span that raised it
    assert wait_for(lambda: detail_text(browser).startswith("execute_tool forward"), timeout=15)
    assert [r["name"] for r in tree_rows(browser) if r["selected"]] == ["execute_tool forward"]
    # message content, captured on this span, shown as indented JSON (headings show in capitals)
    assert 'MESSAGES' in detail_text(browser) and '"content": "send it on"' in detail_text(browser)
