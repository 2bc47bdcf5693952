"""The workbook and alert rules: their queries are the ones docs/monitoring.md shows, they name
only tables, columns, dimensions, metrics and log lines the controller exports, and the stuck
rule knows the stages' real time limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.state.machine import Stage
from shared.steps.registry import BUDGETS

ROOT = Path(__file__).resolve().parents[2]
QUERIES = sorted((ROOT / "infra" / "monitoring").glob("*.kql"))
BICEP = (ROOT / "infra" / "modules" / "workbook.bicep").read_text()
DOC = (ROOT / "docs" / "monitoring.md").read_text()
SOURCE = "\n".join(
    p.read_text() for folder in ("shared", "functions") for p in (ROOT / folder).rglob("*.py")
)
# The Application Insights tables the OpenTelemetry exporter fills (docs/monitoring.md's table)
# and the standard columns of those tables the queries may use.
TABLES = {"requests", "dependencies", "customMetrics", "traces"}
COLUMNS = {
    "timestamp", "name", "customDimensions", "operation_Id", "success", "message",
    "severityLevel", "valueSum", "valueCount", "valueMax",
}  # fmt: skip
KQL_WORDS = {
    "where", "extend", "summarize", "project", "order", "by", "asc", "desc", "join", "kind",
    "leftouter", "inner", "on", "let", "union", "evaluate", "pivot", "datatable", "and", "or",
    "in", "has", "startswith", "isnotempty", "tostring", "toint", "todouble", "ago", "bin",
    "sum", "count", "countif", "dcount", "dcountif", "max", "min", "any", "percentile",
    "indexof", "coalesce", "arg_max", "string", "int", "m", "d", "h", "true", "false",
}  # fmt: skip


def _exported_dimensions() -> set[str]:
    names = set(re.findall(r'"(labimage\.[a-z_.]+)"', SOURCE))
    names |= {"labimage." + n for n in re.findall(r'PREFIX \+ "([a-z_]+)"', SOURCE)}
    names |= set(re.findall(r'\{"(outcome|rule|stage)": ', SOURCE))  # metric attributes
    return names


def _metrics() -> set[str]:
    return set(re.findall(r'create_(?:counter|histogram)\(\s*"([a-z.]+)"', SOURCE))


@pytest.mark.parametrize("path", QUERIES, ids=lambda p: p.stem)
def test_each_query_is_deployed_and_shown_in_the_monitoring_page(path: Path) -> None:
    assert f"'../monitoring/{path.name}'" in BICEP
    assert path.read_text().rstrip("\n") in DOC


@pytest.mark.parametrize("path", QUERIES, ids=lambda p: p.stem)
def test_queries_name_only_what_the_telemetry_exports(path: Path) -> None:
    query = path.read_text()
    strings = re.findall(r'"([^"]*)"', query)
    bare = re.sub(r'"[^"]*"', '""', query)
    sources = set(re.findall(r"^\s*(?:\(|let \w+ = |union\s*)?([A-Za-z_]+)\b", bare, re.M))
    tables = {t for t in sources if t in TABLES}
    assert tables, "the query reads no exported table"
    for dimension in re.findall(r'customDimensions\["([^"]+)"\]', query):
        assert dimension in _exported_dimensions(), dimension
    for metric in (s for s in strings if s.startswith("labimage.") and "." in s[9:]):
        if metric in re.findall(r'customDimensions\["([^"]+)"\]', query):
            continue
        assert metric in _metrics(), metric
    for fragment in re.findall(r'message (?:startswith|has) "([^"]+)"', query):
        assert fragment in SOURCE, f"no log line says {fragment!r}"
    # Every identifier is a KQL word, an exported table or column, or a name the query made.
    made = set(re.findall(r"\b([A-Za-z_]\w*)\s*=(?!=)", bare)) | set(
        re.findall(r"\(\s*(\w+)\s*:", bare)
    )
    made |= set(re.findall(r"datatable\(([^)]*)\)", bare) and re.findall(r"(\w+):", bare))
    for word in re.findall(r"\b([A-Za-z_]\w*)\b", bare):
        assert word in KQL_WORDS | TABLES | COLUMNS | made, word


def test_the_stuck_rule_knows_each_stage_s_time_limit() -> None:
    query = (ROOT / "infra" / "monitoring" / "alert-stuck-builds.kql").read_text()
    limits = dict(re.findall(r'"([a-z]+)", (\d+)', query))
    expected = {s.value: str(int(b.deadline.total_seconds() // 60)) for s, b in BUDGETS.items()}
    assert limits == {k: v for k, v in expected.items() if k != Stage.DONE.value}


def test_the_workbook_covers_the_tiles_the_issue_names() -> None:
    for stem in (
        "builds-funnel", "stage-durations", "failures", "workstations-running", "autostop-savings",
    ):  # fmt: skip
        assert f"'../monitoring/{stem}.kql'" in BICEP
    assert BICEP.count("alert-") == 4


def test_the_alerts_notify_an_action_group_when_an_address_is_given() -> None:
    """Without a receiver an alert only shows in the portal; `alertEmail` (azd:
    LABIMAGE_ALERT_EMAIL) makes an e-mail action group every rule names."""
    main = (ROOT / "infra" / "main.bicep").read_text()
    parameters = (ROOT / "infra" / "main.parameters.json").read_text()
    assert "param alertEmail string = ''" in main and "alertEmail: alertEmail" in main
    assert '"alertEmail": { "value": "${LABIMAGE_ALERT_EMAIL=}" }' in parameters
    for module in ("app", "monitoring"):
        text = (ROOT / "infra" / "modules" / f"{module}.bicep").read_text()
        assert "param alertEmail string" in text and "alertEmail: alertEmail" in text
    assert "resource actionGroup 'Microsoft.Insights/actionGroups@" in BICEP
    assert "if (!empty(alertEmail))" in BICEP and "emailReceivers" in BICEP
    assert "actionGroups: [resourceId('Microsoft.Insights/actionGroups', actionGroupName)]" in BICEP
    assert "dependsOn: [actionGroup]" in BICEP
