"""Read an alert rule file and report every problem in it at once, each with its line number.

``load_rules`` (strict: raises listing all problems), ``agentmon rules check``, ``agentmon serve
--rules`` and ``configure(alert_rules=...)`` (lenient: warns once and keeps the good rules) all
read a file through ``check_rule_file``. YAML syntax errors carry the parser's position; for the
rules themselves the line is the offending key's, or the rule's first line.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, cast, get_args

import yaml

from .._core.guard import log_once
from .engine import SIGNALS, AlertRule, Op

_KEYS: Final = ("name", "signal", "op", "threshold", "for", "resolve", "window", "agent", "severity", "labels",
                "annotations")
_OPS: Final = get_args(Op)


@dataclasses.dataclass(frozen=True)
class RuleFileReport:
    """The valid rules of a file, and one ``path:line: problem`` string per problem found."""

    rules: list[AlertRule]
    errors: list[str]


class RuleFileError(ValueError):
    """A rule file with problems; ``errors`` lists every one (``path:line: problem``)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        super().__init__(f"{count} in the rule file:\n" + "\n".join(f"  {e}" for e in errors))


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _key_lines(node: yaml.Node) -> tuple[dict[str, int], list[tuple[int, str]]]:
    """Line of each key of a mapping node, and its duplicated keys (YAML keeps the last silently)."""
    lines: dict[str, int] = {}
    duplicates: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in cast(list[tuple[yaml.Node, yaml.Node]], node.value):
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in lines:
                duplicates.append((line, f"key {key!r} given twice (first on line {lines[key]})"))
            lines[key] = line
    return lines, duplicates


def _duration(value: object) -> float:
    from .rules import parse_duration

    return parse_duration(value)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not {value!r}")
    try:
        number = float(cast(Any, value))
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, not {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"{what} must be a number, not NaN")
    return number


def _str_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a mapping")
    return {str(k): str(v) for k, v in cast(Mapping[object, object], value).items()}


def _check_rule(entry: Mapping[str, Any], lines: Mapping[str, int], first: int) -> tuple[AlertRule | None,
                                                                                           list[tuple[int, str]]]:
    """The rule in ``entry``, or None, and every problem with it as (line, message)."""
    name = entry.get("name")
    label = f"rule {name!r}" if isinstance(name, str) and name.strip() else "rule"
    errors: list[tuple[int, str]] = []
    fields: dict[str, Any] = {}

    def check(key: str, read: Any, *, required: bool = False, default: object = None) -> None:
        if key not in entry:
            if required:
                errors.append((first, f"{label}: missing {key!r}"))
            elif default is not None:
                fields[key] = read(default)
            return
        try:
            fields[key] = read(entry[key])
        except ValueError as exc:
            errors.append((lines.get(key, first), f"{label}: {exc}"))

    for key in entry:
        if key not in _KEYS:
            errors.append((lines.get(str(key), first), f"{label}: unknown key {key!r} (known: {', '.join(_KEYS)})"))
    check("name", _rule_name, required=True)
    check("signal", _signal, required=True)
    check("op", _op, default=">")
    check("threshold", lambda v: _number(v, "threshold"), required=True)
    check("for", _nonnegative_duration, default=0)
    check("resolve", lambda v: None if v is None else _number(v, "resolve"))
    check("window", _positive_duration, default="1m")
    check("agent", str, default="*")
    check("severity", str, default="warning")
    check("labels", lambda v: _str_map(v, "labels"))
    check("annotations", lambda v: _str_map(v, "annotations"))
    if errors:
        return None, errors
    try:
        rule = AlertRule(name=fields["name"], signal=fields["signal"], op=fields["op"], threshold=fields["threshold"],
                         for_=fields["for"], resolve=fields.get("resolve"), window=fields["window"],
                         agent=fields["agent"], severity=fields["severity"], labels=fields.get("labels", {}),
                         annotations=fields.get("annotations", {}))
    except ValueError as exc:  # a check across fields, such as resolve's side of the threshold
        return None, [(first, str(exc))]
    return rule, []


def _rule_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or not value.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"name {value!r}: use a non-empty name of letters, digits, '_' or '-'")
    return value


def _signal(value: object) -> str:
    if value not in SIGNALS:
        raise ValueError(f"unknown signal {value!r}; one of {', '.join(sorted(SIGNALS))}")
    return value


def _op(value: object) -> str:
    if value not in _OPS:
        raise ValueError(f"op must be one of {', '.join(_OPS)}, not {value!r}")
    return cast(str, value)


def _nonnegative_duration(value: object) -> float:
    seconds = _duration(value)
    if seconds < 0:
        raise ValueError(f"'for' must be >= 0, not {value!r}")
    return seconds


def _positive_duration(value: object) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise ValueError(f"'window' must be > 0, not {value!r}")
    return seconds


def check_rule_file(source: str | Path) -> RuleFileReport:
    """Read ``source``; never raises. Invalid or duplicate rules are left out and reported."""
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return RuleFileReport([], [f"{source}: cannot read the file: {reason}"])
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else str(source)
        problem = ": ".join(str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
        return RuleFileReport([], [f"{where}: YAML syntax error: {problem or exc}"])
    finally:
        loader.dispose()
    if root is None or not isinstance(data, Mapping) or not isinstance(data.get("rules"), list):
        return RuleFileReport([], [f"{source}:{_line(root) or 1}: expected a mapping with a 'rules' list"])
    rules_node: yaml.Node | None = next((v for k, v in cast(list[tuple[yaml.Node, yaml.Node]], root.value)
                                         if k.value == "rules"), None)
    nodes = cast(list[yaml.Node], rules_node.value) if isinstance(rules_node, yaml.SequenceNode) else []
    return _check_entries(source, cast(list[object], data["rules"]), nodes)


def _check_entries(source: str | Path, entries: list[object], nodes: list[yaml.Node]) -> RuleFileReport:
    rules: list[AlertRule] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        node = nodes[i] if i < len(nodes) else None
        first = _line(node) or 1
        if not isinstance(entry, Mapping):
            problems.append((first, f"rule #{i + 1} is not a mapping of keys: {entry!r}"))
            continue
        lines, duplicates = _key_lines(node) if node is not None else ({}, [])
        rule, errors = _check_rule(cast(Mapping[str, Any], entry), lines, first)
        problems.extend(duplicates)
        problems.extend(errors)
        if rule is None or duplicates:
            continue
        if rule.name in seen:
            problems.append((first, f"rule {rule.name!r}: name already used on line {seen[rule.name]}; "
                                    f"names must be unique"))
            continue
        seen[rule.name] = first
        rules.append(rule)
    problems.sort(key=lambda p: p[0])
    return RuleFileReport(rules, [f"{source}:{line}: {message}" for line, message in problems])


def unique_rules(rules: Iterable[object], option: str) -> list[AlertRule]:
    """``configure(alert_rules=[...])``: keep the AlertRule entries with a new name, warn once about the rest."""
    kept: list[AlertRule] = []
    skipped: list[str] = []
    for rule in rules:
        if not isinstance(rule, AlertRule):
            skipped.append(f"{type(rule).__qualname__} (not an AlertRule)")
        elif any(r.name == rule.name for r in kept):
            skipped.append(f"{rule.name!r} (name already used)")
        else:
            kept.append(rule)
    if skipped:
        log_once(logging.WARNING, f"rules:{option}", "%s: skipping %d alert rule(s): %s; expected a list of "
                 "otel_agentmon.AlertRule with unique names", option, len(skipped), ", ".join(skipped))
    return kept


def rules_for_option(source: object, option: str) -> list[AlertRule]:
    """The rules ``configure()`` runs with; never raises. A file with problems is one warning listing
    them all, and every valid rule in it still runs."""
    if source is None:
        return []
    if not isinstance(source, (str, Path)) and not hasattr(source, "__fspath__"):
        return unique_rules(cast(Iterable[object], source), option)
    path = Path(cast(str, source))
    report = check_rule_file(path)
    if report.errors:
        log_once(logging.WARNING, f"rules:{option}",
                 "%s=%r: %d problem(s) in the alert rule file; running the %d valid rule(s) in it "
                 "(check it with `agentmon rules check`):\n  %s", option, str(source), len(report.errors),
                 len(report.rules), "\n  ".join(report.errors))
    return report.rules
