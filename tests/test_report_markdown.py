"""The Markdown report shows hostile names literally, and its evidence says what the HTML's says.

The Markdown is rendered with markdown-it-py (CommonMark + GFM tables, raw HTML allowed, as most
renderers do), so the assertions are about what a reader of the rendered report sees.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from otel_agentmon import cli
from otel_agentmon._records.recording import AlertRecord, MetricSample, RecordingWriter
from otel_agentmon._records.records import SpanRecord

AGENT = "ev|il`agent <img src=x onerror=alert(1)> [click](http://e.x) &lt;\n# not a heading *x* a\\|b"
TOOL = "``tool|x``"
MODEL = "gpt<script>alert(1)</script>|4 \\|"
RULE = "Slow | `rule` <b>bold</b> [x](http://e.x)"
T0 = 10**18


def _flat(name: str) -> str:
    """A name as a one-line report shows it (line breaks become spaces)."""
    return name.replace("\n", " ")


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(Markdown, HTML) of a run whose agent, tool, model, alert and metric names attack both formats."""
    tmp = tmp_path_factory.mktemp("hostile")
    writer = RecordingWriter(tmp / "run.jsonl")
    for i in range(40):
        trace, start = f"{i + 1:032x}", T0 + i * 10**9
        slow = 3 if i >= 30 else 1  # the tool slows down at the end: a regression with a baseline
        writer.write_span(SpanRecord(trace_id=trace, span_id=f"{3 * i + 1:016x}", parent_id=None, name="task",
                                     kind="task", start_ns=start, end_ns=start + (1 + slow) * 10**8, agent=AGENT,
                                     task_type="research", error="boom" if i % 7 == 0 else None))
        writer.write_span(SpanRecord(trace_id=trace, span_id=f"{3 * i + 2:016x}", parent_id=f"{3 * i + 1:016x}",
                                     name="tool", kind="tool", start_ns=start + 10**6,
                                     end_ns=start + 10**6 + slow * 10**8 + i * 10**3, agent=AGENT, tool=TOOL))
        writer.write_span(SpanRecord(trace_id=trace, span_id=f"{3 * i + 3:016x}", parent_id=f"{3 * i + 1:016x}",
                                     name="chat", kind="llm", start_ns=start + slow * 10**8 + 2 * 10**6,
                                     end_ns=start + slow * 10**8 + 5 * 10**7, agent=AGENT, model=MODEL,
                                     input_tokens=10, output_tokens=5))
        writer.write_metric(MetricSample(name="cpu|`x`", value=0.1 * (i % 3), time_ns=start,
                                         attributes={"who": AGENT}))
    writer.write_alert(AlertRecord(rule=RULE, state="firing", severity="critical <i>", time_ns=T0 + 35 * 10**9,
                                   agent=AGENT, summary="summary | <script>x</script> *bold*"))
    writer.close()
    md, page = tmp / "r.md", tmp / "r.html"
    assert cli.main(["report", "--from", str(tmp / "run.jsonl"), "--markdown", str(md), "--html", str(page)]) == 0
    return md.read_text(), page.read_text()


def _tokens(markdown: str) -> list[Token]:
    """Every token of the rendered Markdown, inline children included."""
    out: list[Token] = []
    for tok in MarkdownIt("commonmark").enable("table").parse(markdown):
        out.append(tok)
        out += tok.children or []
    return out


def _text(inline: Token) -> str:
    """What a reader sees of an inline token: its text and code spans."""
    return "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline", "softbreak"))


def test_hostile_names_neither_split_table_cells_nor_reach_the_renderer_as_html(
        hostile_report: tuple[str, str]) -> None:
    markdown = hostile_report[0]
    tokens = _tokens(markdown)
    # No raw HTML, no link, no heading but ours: the names are text.
    assert not [t for t in tokens if t.type in ("html_inline", "html_block", "link_open", "image")]
    headings = [_text(tokens[i + 1]) for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings[0] == "agentmon report" and not [h for h in headings if "not a heading" in h]
    # Every row of every table has as many cells as its header.
    tables, cells = 0, 0
    for tok in tokens:
        if tok.type == "table_open":
            tables, widths = tables + 1, []
        elif tok.type == "tr_open":
            widths.append(0)
        elif tok.type in ("th_open", "td_open"):
            widths[-1] += 1
            cells += 1
        elif tok.type == "table_close":
            assert len(set(widths)) == 1 and len(widths) > 1, widths
    assert tables >= 4 and cells  # agents, tools, models, resource use
    # Each name shows literally, in code spans, in the tables and in the lists.
    code = [t.content for t in tokens if t.type == "code_inline"]
    for name in (AGENT, TOOL, MODEL, "cpu|`x`"):
        assert code.count(_flat(name)) >= 2 if name != "cpu|`x`" else _flat(name) in code, (name, code)
    # Plain text (an alert's rule, severity and summary, a metric's attributes) shows literally too.
    texts = [_text(t) for t in tokens if t.type == "inline"]
    assert any(f"{RULE} for {_flat(AGENT)} (critical <i>)" in t and t.endswith(
        "summary | <script>x</script> *bold*") for t in texts), texts
    assert any(t == f"who={_flat(AGENT)}" for t in texts)


def _seen(text: str) -> str:
    """Text as a browser shows it: runs of whitespace, line breaks included, are one space."""
    return " ".join(text.split())


class _EvidenceText(HTMLParser):
    """The text of every ``<div class="ev">`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "div" and ("class", "ev") in attrs:
            self.found.append("")
            self._depth = 1
        elif self._depth and tag == "div":
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag == "div":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.found[-1] += data


def test_markdown_and_html_show_the_same_evidence(hostile_report: tuple[str, str]) -> None:
    markdown, page = hostile_report
    md_evidence = {t for t in (_text(tok) for tok in _tokens(markdown) if tok.type == "inline")
                   if t.startswith("evidence: ")}
    parser = _EvidenceText()
    parser.feed(page)
    html_evidence = {_seen(t) for t in parser.found}
    assert html_evidence and md_evidence
    assert html_evidence <= {_seen(t) for t in md_evidence}, html_evidence - {_seen(t) for t in md_evidence}
    # The regression's evidence: its test, both windows, both sample sizes, the statistic, p and traces.
    regression = next(t for t in html_evidence if "mann_whitney_u(duration_s{kind=\"tool\"" in t)
    for piece in ("; window [", "; baseline [", "; n=", "; n_baseline=", "; n_recent=", "; statistic=", "; p=",
                  "; traces "):
        assert piece in regression, (piece, regression)
    assert f'tool="{TOOL}"' in regression
