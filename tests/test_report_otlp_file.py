"""``agentmon report --from FILE`` on what the Collector's file exporter writes.

The fixtures in ``tests/data/otlp_file`` are one run of ``tests/scripts/small_run.py`` (4 tasks per
agent) as the real Collector's file exporter wrote it (``format: json``: OTLP JSON lines;
``compression: zstd``: length-prefixed zstd frames) and as the process recorded itself. A report
from any of them must list the same findings with the same counts. The last test makes those files
again with the Collector binary (``collector-config/build``), also with ``format: proto``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otel_agentmon import cli
from otel_agentmon._report.sources import load, sniff
from tests.support.stack import Binaries, Stack, clean_env

DATA = Path(__file__).with_name("data") / "otlp_file"
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "small_run.py"


def sections(markdown: str, *names: str) -> dict[str, str]:
    """The text of the named ``## `` sections."""
    parts = re.split(r"^## ", markdown, flags=re.M)
    found = {p.split("\n", 1)[0]: p.split("\n", 1)[1] for p in parts[1:]}
    return {n: found.get(n, "") for n in names}


COMPARED = ("Findings", "Agents: performance and efficiency", "Tools", "Models", "Regressions", "Alerts fired")


def report(path: Path, tmp_path: Path) -> str:
    md = tmp_path / f"{path.name}.md"
    assert cli.main(["report", "--from", str(path), "--markdown", str(md)]) == 0
    return md.read_text()


def test_the_collector_files_of_a_run_report_what_its_recording_reports(tmp_path: Path) -> None:
    recording = report(DATA / "small_run.recording.jsonl", tmp_path)
    for name in ("small_run.otlp.jsonl", "small_run.otlp.zst"):
        text = report(DATA / name, tmp_path)
        assert sections(text, *COMPARED) == sections(recording, *COMPARED), name
        assert f"Source: OTLP file {DATA / name} (Collector file exporter)" in text
    # What the run did: 4 tasks each, one coder task failed, the unlisted model is unpriced.
    assert "| `coder` | 4 | 1 | 25.0% |" in recording and "| `planner` | 4 | 0 | 0.0% |" in recording
    assert "Unpriced: `gpt-4.1-nano`." in recording
    assert "**CoderSlow** for `coder` (warning): fired 1x" in recording
    findings = sections(recording, "Findings")["Findings"]
    assert "1. **alert CoderSlow for agent 'coder' fired 1x (warning), now resolved**" in findings


def test_the_format_is_told_by_content_not_by_name(tmp_path: Path) -> None:
    for name, kind in (("small_run.otlp.jsonl", "otlp-json"), ("small_run.otlp.zst", "otlp-framed"),
                       ("small_run.recording.jsonl", "recording")):
        renamed = tmp_path / "data.bin"
        shutil.copyfile(DATA / name, renamed)
        assert sniff(renamed) == kind
        rec = load(str(renamed))
        assert len(rec.spans) == 32 and rec.skipped == 0, (name, len(rec.spans), rec.skipped)
        assert [(a.rule, a.state) for a in rec.alerts] == [("CoderSlow", "firing"), ("CoderSlow", "resolved")]


def test_a_cut_or_foreign_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    lines = (DATA / "small_run.otlp.jsonl").read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.json"
    cut.write_bytes(b"".join(lines) + b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}\n'
                    + b'{"something": "else"}\n' + lines[0][: len(lines[0]) // 2])
    rec = load(str(cut))
    assert len(rec.spans) == 32 and rec.skipped == 3
    framed = (DATA / "small_run.otlp.zst").read_bytes()
    short = tmp_path / "short.zst"
    short.write_bytes(framed[:-100])  # the last frame cut
    rec = load(str(short))
    assert rec.skipped == 1 and 0 < len(rec.spans) <= 32


CONFIG = """
extensions:
  health_check:
    endpoint: 127.0.0.1:{health}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{http}
exporters:
  file/json:
    path: {out}/otlp.jsonl
  file/zstd:
    path: {out}/otlp.zst
    compression: zstd
  file/proto:
    path: {out}/otlp.pb
    format: proto
service:
  extensions: [health_check]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces: {{receivers: [otlp], exporters: [file/json, file/zstd, file/proto]}}
    metrics: {{receivers: [otlp], exporters: [file/json, file/zstd, file/proto]}}
    logs: {{receivers: [otlp], exporters: [file/json, file/zstd, file/proto]}}
"""


@pytest.mark.subprocess
@pytest.mark.timeout(180)
def test_the_real_collector_file_exporter_in_every_format(binaries: Binaries, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with Stack(tmp_path, binaries) as stack, stack.logs_on_failure():
        health, http = stack.free_ports(2)
        config = tmp_path / "file.yaml"
        config.write_text(CONFIG.format(health=health, http=http, out=out))
        collector = stack.spawn("otelcol-file", [str(binaries.otelcol), f"--config={config}"], clean_env())
        stack.wait_ready(collector, f"http://127.0.0.1:{health}/")
        env = clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{http}"})
        proc = subprocess.run([sys.executable, str(SCRIPT), str(out / "run.jsonl")], env=env, capture_output=True,
                              text=True, timeout=90, cwd=ROOT, check=False)
        assert proc.returncode == 0, proc.stderr
        assert collector.stop() == 0  # SIGTERM: the exporters flush and close their files
        stack.services.remove(collector)  # stopped on purpose, and cleanly
    recording = report(out / "run.jsonl", tmp_path)
    assert "| `coder` | 12 | 3 | 25.0% |" in recording
    for name, kind in (("otlp.jsonl", "otlp-json"), ("otlp.zst", "otlp-framed"), ("otlp.pb", "otlp-framed")):
        assert sniff(out / name) == kind
        text = report(out / name, tmp_path)
        assert sections(text, *COMPARED) == sections(recording, *COMPARED), name


def test_a_frame_larger_than_the_first_read_is_still_a_frame(tmp_path: Path) -> None:
    """Detection reads the first 64 KiB: a first frame bigger than that is still told apart."""
    line = (DATA / "small_run.otlp.jsonl").read_bytes().splitlines()[0]
    padded = line[:-1] + b', "padding": "' + b"x" * 100_000 + b'"}'
    framed = tmp_path / "big.bin"
    framed.write_bytes(len(padded).to_bytes(4, "big") + padded)
    assert sniff(framed) == "otlp-framed"
    assert load(str(framed)).skipped == 0
