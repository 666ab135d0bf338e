"""``agentmon report --prometheus URL``: the same report from a Prometheus server's metrics.

Everything comes from PromQL over the HTTP API (``/api/v1/query`` for totals at the period's
end, ``/api/v1/query_range`` for charts, trends, alerts and resources). Totals over a window
[t0, t1] use ``(last_over_time(m[W] @ t1) - m @ t0) or last_over_time(m[W] @ t1)``: a series born
inside the window counts from zero (``increase()`` would drop its first sample); counter resets
inside the window are not corrected. Percentiles come from the histogram buckets (as
``histogram_quantile``); regressions use Mann-Whitney U on the bucket counts (grouped data: values
in one bucket are ties) and the two-proportion z-test on task outcomes. Prometheus holds no
traces, so there are no bottlenecks and no trace ids in the evidence.
"""

from __future__ import annotations

import itertools
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from .._alerts.episodes import PROMETHEUS, SAME_EPISODE_S, episodes
from .._analytics.base import Evidence, Window
from .._analytics.change import MW_TEST, Z_TEST, Comparison, RegressionPolicy, Trend, split
from .._analytics.stats import histogram_quantile, mann_whitney_grouped, ols, two_proportion_greater
from ..analytics import MIN_TREND_PERIOD_S, AlertSummary, MetricSummary, Opportunity
from .model import AgentRow, GroupRow, ReportModel, Series, highlights

_TIMEOUT_S = 30.0
#: (dimension, histogram, label) of the latency histograms the report reads.
HISTOGRAMS = (("agent", "agentmon_task_duration_seconds", "gen_ai_agent_name"),
              ("tool", "gen_ai_execute_tool_duration_seconds", "gen_ai_tool_name"),
              ("model", "gen_ai_client_operation_duration_seconds", "gen_ai_request_model"))
RESOURCES = ("process_cpu_utilization_ratio", "process_memory_usage_bytes")
Result = list[dict[str, Any]]


class Prom:
    def __init__(self, url: str, job: str | None) -> None:
        self.url = url.rstrip("/")
        self.sel = "" if job is None else f'job="{job}"'

    def _get(self, endpoint: str, params: Mapping[str, str]) -> Result:
        url = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            exc.close()
            raise OSError(f"Prometheus {endpoint} {params.get('query')!r}: HTTP {exc.code} {detail}") from None
        except urllib.error.URLError as exc:
            raise OSError(f"Prometheus at {self.url}: {exc.reason}") from None
        if body.get("status") != "success":
            raise ValueError(f"Prometheus {endpoint}: {body.get('error')}")
        return list(body["data"]["result"])

    def query(self, expr: str, at: float) -> Result:
        return self._get("query", {"query": expr, "time": f"{at:.3f}"})

    def query_range(self, expr: str, start: float, end: float, step: float) -> Result:
        return self._get("query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                         "step": f"{step:.3f}"})

    def m(self, name: str, extra: str = "") -> str:
        labels = ",".join(x for x in (self.sel, extra) if x)
        return f"{name}{{{labels}}}"

    def delta(self, name: str, by: str, t0: float, t1: float, extra: str = "") -> str:
        """PromQL: the increase of counter ``name`` over [t0, t1], summed by ``by`` (query at t1)."""
        series = self.m(name, extra)
        rng = f"{max(1, math.ceil(t1 - t0))}s"
        inner = f"(last_over_time({series}[{rng}] @ {t1:.3f}) - {series} @ {t0:.3f}) or " \
                f"last_over_time({series}[{rng}] @ {t1:.3f})"
        return f"sum by ({by}) ({inner})"


def _buckets(prom: Prom, hist: str, label: str, t0: float, t1: float) -> tuple[dict[str, list[float]], list[float],
                                                                                 str]:
    """Per-group per-bucket counts (not cumulative) over [t0, t1], the bucket bounds, the query."""
    expr = prom.delta(f"{hist}_bucket", f"le, {label}", t0, t1)
    cumulative: dict[str, dict[float, float]] = {}
    for r in prom.query(expr, t1):
        key = r["metric"].get(label)
        if key:
            cumulative.setdefault(key, {})[float(r["metric"]["le"])] = max(0.0, float(r["value"][1]))
    bounds = sorted({le for per in cumulative.values() for le in per})
    out = {}
    for key, per in cumulative.items():
        cum = [per.get(le, 0.0) for le in bounds]
        cum = [max(cum[: i + 1]) for i in range(len(cum))]  # monotone despite scrape skew
        out[key] = [float(round(c - (cum[i - 1] if i else 0.0))) for i, c in enumerate(cum)]
    return out, bounds, expr


def build_model(url: str, start: float | None, end: float | None, *, job: str | None = None,
                recent_fraction: float = 1 / 3, policy: RegressionPolicy | None = None) -> ReportModel:
    """The report of [start, end] (default: the last hour) from Prometheus at ``url``."""
    prom = Prom(url, job)
    t1 = time.time() if end is None else end
    t0 = t1 - 3600.0 if start is None else start
    window = Window(int(t0 * 1e9), int(t1 * 1e9))
    base_w, recent_w = split(window, recent_fraction)
    cut = recent_w.start_ns / 1e9
    policy = policy or RegressionPolicy()
    seconds = max(1e-9, t1 - t0)
    rows: dict[str, list[GroupRow]] = {}
    comparisons: list[Comparison] = []
    for dim, hist, label in HISTOGRAMS:
        full, bounds, expr = _buckets(prom, hist, label, t0, t1)
        base, _, base_expr = _buckets(prom, hist, label, t0, cut)
        now, _, now_expr = _buckets(prom, hist, label, cut, t1)
        err_expr = prom.delta(f"{hist}_count", label, t0, t1, 'error_type!=""')
        errors = {r["metric"].get(label): round(max(0.0, float(r["value"][1]))) for r in prom.query(err_expr, t1)}
        rows[dim] = []
        for key, counts in sorted(full.items()):
            n = int(sum(counts))
            if n == 0:
                continue
            p50, p95 = histogram_quantile(0.5, bounds, counts), histogram_quantile(0.95, bounds, counts)
            ev = Evidence(f"p50/p95 of {hist} for {label}={key!r} from bucket counts over the period; errors",
                          f'histogram_quantile(0.5|0.95, {expr.replace(f"by (le, {label})", "by (le)")} '
                          f'with {label}="{key}"); {err_expr}', window, n=n, numbers={"p50_s": p50 or 0.0})
            rows[dim].append(GroupRow(dim, key, n, errors.get(key, 0), p50, p95, None, ev))
            if key in base and key in now:
                c = _latency_test(dim, key, bounds, base[key], now[key], base_w, recent_w, base_expr, now_expr,
                                  policy)
                if c is not None:
                    comparisons.append(c)
    agents = _agents(prom, rows.get("agent", []), t0, t1, seconds, window)
    comparisons += _error_tests(prom, t0, cut, t1, base_w, recent_w, policy)
    latency, throughput, trends = _charts_and_trends(prom, t0, t1, window)
    latency = {k: [(x, y * 1000) for x, y in pts] for k, pts in latency.items()}  # charts in ms, like the tables
    if window.seconds < MIN_TREND_PERIOD_S:
        trends = []  # a per-minute slope needs that much data (the report's stated rule)
    alerts = _alerts(prom, t0, t1)
    metrics = _resources(prom, t0, t1)
    regressions = sorted((c for c in comparisons if c.regressed), key=lambda c: c.evidence.p_value or 1.0)
    opportunities = [Opportunity("regression", f"regression: {c.headline()} vs baseline (p={c.evidence.p_value:.2g})",
                                 min(1.0, 0.8 + 0.1 * (c.change - 1 if c.metric != "error_ratio" else 4 * c.change)),
                                 c.evidence) for c in regressions]
    opportunities += [Opportunity("errors", f"agent {a.agent!r} error ratio {a.error_ratio:.0%} ({a.failed} of "
                                  f"{a.tasks} tasks failed)", min(1.0, 2 * a.error_ratio), a.evidence)
                      for a in agents if a.tasks >= 5 and a.error_ratio >= 0.05]
    opportunities += [Opportunity("trend", f"trend: {t.headline()}", 0.4, t.evidence) for t in trends
                      if t.slope_per_s > 0 and t.metric == "p50_latency_s"]
    opportunities.sort(key=lambda o: o.score, reverse=True)
    return ReportModel(
        title="agentmon report", source=f"Prometheus at {prom.url}" + (f" (job {job})" if job else ""),
        window=window, agents=agents, tools=rows.get("tool", []), models=rows.get("model", []),
        highlights=highlights(agents, rows.get("tool", [])), regressions=regressions, tests_run=len(comparisons),
        policy=policy, trends=trends, bottlenecks=[], alerts=alerts, metrics=metrics, opportunities=opportunities,
        latency_chart=latency, throughput_chart=throughput,
        notes=["from metrics: no traces, so no critical-path bottlenecks and no trace ids as evidence",
               "utilisation = busy seconds / wall seconds, summed over the agent's instances"])


def _latency_test(dim: str, key: str, bounds: list[float], base: list[float], now: list[float], base_w: Window,
                  recent_w: Window, base_expr: str, now_expr: str, policy: RegressionPolicy) -> Comparison | None:
    if sum(base) < policy.min_samples or sum(now) < policy.min_samples:
        return None
    result = mann_whitney_grouped(now, base)
    b_med, n_med = histogram_quantile(0.5, bounds, base), histogram_quantile(0.5, bounds, now)
    if result is None or not b_med or n_med is None:
        return None
    ratio = n_med / b_med
    ev = Evidence(f"are the {dim} {key!r} durations larger in the recent window? ({MW_TEST} on histogram bucket "
                  f"counts; regression if p < {policy.alpha} and median ratio >= {policy.min_ratio})",
                  f"mann_whitney_u(buckets[recent] > buckets[baseline]); recent: {now_expr}; baseline: {base_expr}",
                  recent_w, n=int(sum(now)), statistic=result.statistic, p_value=result.p_value, baseline=base_w,
                  numbers={"n_baseline": sum(base), "n_recent": sum(now), "z": result.z,
                           "median_baseline_ms": b_med * 1000, "median_recent_ms": n_med * 1000})
    regressed = result.p_value < policy.alpha and ratio >= policy.min_ratio
    return Comparison("latency", dim, key, b_med, n_med, ratio, MW_TEST, regressed, ev)  # type: ignore[arg-type]  # dim comes from HISTOGRAMS, whose first items are the Literal's values


def _outcomes(prom: Prom, t0: float, t1: float) -> tuple[dict[str, tuple[int, int]], str]:
    expr = prom.delta("agentmon_tasks_completed_total", "gen_ai_agent_name, agentmon_task_outcome", t0, t1)
    out: dict[str, tuple[int, int]] = {}
    for r in prom.query(expr, t1):
        agent = r["metric"].get("gen_ai_agent_name")
        if agent:
            n = round(max(0.0, float(r["value"][1])))
            total, failed = out.get(agent, (0, 0))
            out[agent] = (total + n, failed + (n if r["metric"].get("agentmon_task_outcome") == "error" else 0))
    return out, expr


def _error_tests(prom: Prom, t0: float, cut: float, t1: float, base_w: Window, recent_w: Window,
                 policy: RegressionPolicy) -> list[Comparison]:
    (base, base_expr), (now, now_expr) = _outcomes(prom, t0, cut), _outcomes(prom, cut, t1)
    out = []
    for agent in sorted(set(base) & set(now)):
        (nb, kb), (nn, kn) = base[agent], now[agent]
        if nb < policy.min_error_samples or nn < policy.min_error_samples:
            continue
        result = two_proportion_greater(kn, nn, kb, nb)
        if result is None:
            continue
        ev = Evidence(f"is agent {agent!r}'s task error ratio higher in the recent window? ({Z_TEST})",
                      f"recent: {now_expr}; baseline: {base_expr}", recent_w, n=nn, statistic=result.z,
                      p_value=result.p_value, baseline=base_w, numbers={"n_baseline": nb, "n_recent": nn})
        regressed = result.p_value < policy.alpha and kn / nn - kb / nb >= policy.min_error_increase
        out.append(Comparison("error_ratio", "agent", agent, kb / nb, kn / nn, kn / nn - kb / nb, Z_TEST, regressed,
                              ev))
    return out


def _agents(prom: Prom, timed: list[GroupRow], t0: float, t1: float, seconds: float, window: Window
            ) -> list[AgentRow]:
    outcomes, out_expr = _outcomes(prom, t0, t1)
    tokens_expr = prom.delta("agentmon_task_token_usage_sum", "gen_ai_agent_name", t0, t1)
    busy_expr = prom.delta("agentmon_agent_busy_time_seconds_total", "gen_ai_agent_name", t0, t1)
    tokens = {r["metric"].get("gen_ai_agent_name"): float(r["value"][1]) for r in prom.query(tokens_expr, t1)}
    busy = {r["metric"].get("gen_ai_agent_name"): float(r["value"][1]) for r in prom.query(busy_expr, t1)}
    by_agent = {row.key: row for row in timed}
    rows = []
    for agent in sorted(set(outcomes) | set(by_agent)):
        total, failed = outcomes.get(agent, (by_agent[agent].calls if agent in by_agent else 0, 0))
        lat = by_agent.get(agent)
        ev = Evidence(f"tasks, failures, percentiles, tokens and busy time of agent {agent!r} over the period",
                      f'{out_expr}; {tokens_expr}; {busy_expr} (gen_ai_agent_name="{agent}")', window, n=total,
                      numbers={"failed": failed})
        rows.append(AgentRow(agent, total, failed, total / seconds, None if lat is None else lat.p50_s,
                             None if lat is None else lat.p95_s,
                             busy[agent] / seconds if agent in busy else None,
                             tokens[agent] / total if agent in tokens and total else None, None, ev))
    return rows


def _step(t0: float, t1: float) -> float:
    return max(1.0, (t1 - t0) / 60.0)


def _range_series(prom: Prom, expr: str, t0: float, t1: float, label: str) -> Series:
    out: Series = {}
    for r in prom.query_range(expr, t0, t1, _step(t0, t1)):
        key = r["metric"].get(label, "")
        pts = [(float(t) - t0, float(v)) for t, v in r["values"] if math.isfinite(float(v))]
        if key and pts:
            out[key] = pts
    return out


def _charts_and_trends(prom: Prom, t0: float, t1: float, window: Window) -> tuple[Series, Series, list[Trend]]:
    rate_w = f"{max(2, math.ceil(4 * _step(t0, t1)))}s"
    lat_expr = (f"histogram_quantile(0.5, sum by (le, gen_ai_agent_name) "
                f"(rate({prom.m('agentmon_task_duration_seconds_bucket')}[{rate_w}])))")
    thr_expr = f"sum by (gen_ai_agent_name) (rate({prom.m('agentmon_tasks_completed_total')}[{rate_w}]))"
    latency = _range_series(prom, lat_expr, t0, t1, "gen_ai_agent_name")
    throughput = _range_series(prom, thr_expr, t0, t1, "gen_ai_agent_name")
    trends = []
    for metric, expr, series in (("p50_latency_s", lat_expr, latency), ("throughput_per_s", thr_expr, throughput)):
        for agent, pts in sorted(series.items()):
            fit = ols([p[0] for p in pts], [p[1] for p in pts])
            if fit is None or len(pts) < 4 or not fit.significant:
                continue
            ev = Evidence(f"OLS slope of {metric} of agent {agent!r} over query_range steps of {_step(t0, t1):.3g}s; "
                          f"a trend if the 95% CI excludes 0", expr, window, n=len(pts), statistic=fit.t_stat,
                          p_value=fit.p_value, numbers={"slope_per_s": fit.slope})
            trends.append(Trend(metric, "agent", agent, fit.slope, fit.ci_low, fit.ci_high, len(pts), True,  # type: ignore[arg-type]  # metric comes from the loop's tuple of the Literal's values
                                tuple(pts), ev))
    return latency, throughput, trends


def _alerts(prom: Prom, t0: float, t1: float) -> list[AlertSummary]:
    """Alerts Prometheus evaluated (``ALERTS``) and those the processes evaluated
    (``agentmon_alert_firing``): the same rule for the same agent counts once per episode."""
    step = _step(t0, t1)
    found: dict[tuple[str, str | None], list[tuple[float, str, bool]]] = {}
    severity: dict[tuple[str, str | None], str] = {}
    for expr, name_label, where in ((prom.m("ALERTS", 'alertstate="firing"'), "alertname", PROMETHEUS),
                                    (f"{prom.m('agentmon_alert_firing')} == 1", "agentmon_alert_rule", "")):
        for r in prom.query_range(expr, t0, t1, step):
            labels = r["metric"]
            times = [float(t) for t, _ in r["values"]]
            if not times:
                continue
            key = (labels.get(name_label, "?"), labels.get("gen_ai_agent_name"))
            severity.setdefault(key, labels.get("severity", labels.get("agentmon_alert_severity", "")))
            source = f"{where}/{labels.get('instance', '')}" if where else labels.get("instance", "process")
            transitions = found.setdefault(key, [])
            transitions.append((times[0], source, True))
            for a, b in itertools.pairwise(times):
                if b - a > 1.5 * step:  # a gap: it resolved and fired again
                    transitions += [(a + step, source, False), (b, source, True)]
            if t1 - times[-1] > 2 * step:
                transitions.append((times[-1] + step, source, False))
    out = []
    for key, transitions in found.items():
        runs = episodes(transitions, max(SAME_EPISODE_S, 2 * step))
        out.append(AlertSummary(key[0], key[1], severity[key], len(runs), int(runs[0].start * 1e9),
                                "firing" if runs[-1].end is None else "resolved", "",
                                tuple(dict.fromkeys(s for ep in runs for s in ep.sources))))
    return out


def _resources(prom: Prom, t0: float, t1: float) -> list[MetricSummary]:
    out = []
    for name in RESOURCES:
        for r in prom.query_range(prom.m(name), t0, t1, _step(t0, t1)):
            pts = [(int(float(t) * 1e9), float(v)) for t, v in r["values"]]
            if pts:
                values = [v for _, v in pts]
                attrs = {k: v for k, v in r["metric"].items() if k not in ("__name__",)}
                out.append(MetricSummary(name, "", attrs, len(values), min(values), sum(values) / len(values),
                                         max(values), values[-1], tuple(pts[:200])))
    return out
