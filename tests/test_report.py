"""``agentmon report``: the regression example end to end, the offline HTML, the serve source."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from otel_agentmon import cli
from otel_agentmon._records.recording import RecordingWriter
from otel_agentmon._records.records import SpanRecord
from otel_agentmon._report.sources import parse_duration, parse_time, period

ROOT = Path(__file__).resolve().parents[1]
TRACE_ID = re.compile(r"`[0-9a-f]{32}`")


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTMON_"))}
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, check=False)


def assert_offline(page: str) -> None:
    """Nothing in the page can make a browser fetch anything."""
    lowered = page.lower()
    for needle in ("http://", "https://", "<script", " src=", "href=", "url(", "@import", "<link", "<iframe"):
        assert needle not in lowered, needle
    assert lowered.startswith("<!doctype html>") and lowered.rstrip().endswith("</html>")


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run") / "run.jsonl"
    proc = run(str(ROOT / "examples" / "regression_swarm.py"), str(path))
    assert proc.returncode == 0, proc.stderr
    assert "recorded" in proc.stdout and "(0 dropped)" in proc.stdout, proc.stdout
    return path


@pytest.mark.subprocess
def test_report_of_the_regression_example_names_slowest_agent_busiest_tool_and_the_regression(
        regression_run: Path, tmp_path: Path) -> None:
    html, md = tmp_path / "report.html", tmp_path / "report.md"
    proc = run("-m", "otel_agentmon.cli", "report", "--from", str(regression_run), "--html", str(html),
               "--markdown", str(md))
    assert proc.returncode == 0, proc.stderr
    text = md.read_text()
    lines = text.splitlines()

    def with_evidence(pattern: str) -> str:
        """The line matching ``pattern`` and the evidence line right after it."""
        idx = next(i for i, line in enumerate(lines) if re.search(pattern, line))
        evidence = lines[idx + 1]
        assert evidence.lstrip().startswith("- evidence:"), evidence
        assert "window [" in evidence and TRACE_ID.search(evidence), evidence
        return evidence

    with_evidence(r"\*\*slowest agent: `writer`\*\*")  # gpt-4o at 45 ms per task
    with_evidence(r"\*\*busiest tool: `web_search`\*\*")  # two calls per research task
    regression = with_evidence(r"REGRESSION: tool 'db_query' median latency")
    assert "mann_whitney_u(duration_s{kind=\"tool\",tool=\"db_query\"}" in regression
    assert "baseline [" in regression
    p_value = float(re.search(r"; p=([0-9.e+-]+)", regression).group(1))  # type: ignore[union-attr]
    assert p_value < 0.01
    assert re.search(r"statistic=\d", regression)
    # Nothing else regressed: the only tool that changed is db_query (and the agent/task type using it).
    regressed = re.findall(r"REGRESSION: (\w+) '([\w-]+)'", text)
    assert {key for _, key in regressed} <= {"db_query", "reviewer", "review"}, regressed
    assert "**ReviewerSlow** for `reviewer`" in text  # the alert the slowdown fired, from the recording
    assert "tasks of `reviewer`: `tool:db_query`" in text  # its critical path is dominated by the tool
    assert re.search(r"\*\*agent 'researcher' error ratio \d+% \(\d+ of \d+ tasks failed\)\*\*", text)
    page = html.read_text()
    assert_offline(page)
    assert page.count("<svg") >= 3 and "db_query" in page and "writer" in page


def test_markdown_goes_to_stdout_without_outputs(regression_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "--from", str(regression_run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# agentmon report") and "## Regressions" in out


def test_html_escapes_whatever_the_spans_say(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    writer = RecordingWriter(path)
    for i in range(10):
        writer.write_span(SpanRecord(trace_id=f"{i:032x}", span_id=f"{i:016x}", parent_id=None, name="t",
                                     kind="task", start_ns=10**18 + i * 10**9, end_ns=10**18 + i * 10**9 + 10**8,
                                     agent='<img onerror="alert(1)">', task_type="x"))
    writer.close()
    html = tmp_path / "r.html"
    assert cli.main(["report", "--from", str(path), "--html", str(html)]) == 0
    page = html.read_text()
    assert_offline(page)
    assert "<img" not in page and "&lt;img onerror=&quot;alert(1)&quot;&gt;" in page


class _Export(BaseHTTPRequestHandler):
    """A stand-in for ``agentmon serve``'s ``GET /api/export`` (JSON Lines)."""

    body = b""

    def do_GET(self) -> None:
        ok = self.path == "/api/export"
        payload = self.body if ok else b"not found\n"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class names it
        pass


@pytest.fixture
def export_server(regression_run: Path) -> Iterator[str]:
    _Export.body = regression_run.read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Export)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_report_from_a_serve_url_reads_its_export(export_server: str, tmp_path: Path) -> None:
    md = tmp_path / "r.md"
    assert cli.main(["report", "--from", export_server, "--markdown", str(md)]) == 0
    text = md.read_text()
    assert f"Source: agentmon serve at {export_server}" in text
    assert "REGRESSION: tool 'db_query'" in text


def test_unreachable_or_missing_sources_fail_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            export_server: str) -> None:
    assert cli.main(["report", "--from", str(tmp_path / "missing.jsonl")]) == 1
    assert "agentmon report:" in capsys.readouterr().err
    assert cli.main(["report", "--from", export_server + "/nope/"]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli.main(["report", "--from", str(empty)]) == 1
    assert "no spans" in capsys.readouterr().err


def test_period_selection(regression_run: Path, tmp_path: Path) -> None:
    md = tmp_path / "r.md"
    assert cli.main(["report", "--from", str(regression_run), "--start", "2001-01-01T00:00:00Z",
                     "--end", "2001-01-02T00:00:00", "--markdown", str(md)]) == 0
    assert "no spans in the period" in md.read_text()
    assert parse_duration("90s") == 90 and parse_duration("1.5h") == 5400 and parse_duration("2d") == 172800
    assert parse_time("1700000000") == 1700000000.0
    assert parse_time("2023-11-14T22:13:20Z") == 1700000000.0
    assert period("1h", None, None, now=10_000.0) == (6400.0, None)
    assert period(None, "100", "200") == (100.0, 200.0)
    with pytest.raises(ValueError, match="after"):
        period(None, "200", "100")
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")
