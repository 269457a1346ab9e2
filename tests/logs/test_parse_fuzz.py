"""Nothing in a log file can make the reader raise: random text, and real lines cut and spliced at random."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgpulse.logs import parse_text, summarize

REAL = [
    "2026-11-24 10:00:00.123 UTC [4242] app@shop LOG:  duration: 12.345 ms  statement: SELECT 1\n",
    "2026-11-24 10:00:00.124 UTC [4242] app@shop LOG:  duration: 0.051 ms  parse <unnamed>: SELECT $1\n",
    "2026-11-24 10:00:00.125 UTC [4242] app@shop LOG:  duration: 3.1 ms  execute s1: SELECT * FROM t WHERE a = $1\n",
    "\tAND b = 2\n",  # a continuation line comes right after its message's first line, before any DETAIL
    "2026-11-24 10:00:00.125 UTC [4242] app@shop DETAIL:  parameters: $1 = '42'\n",
    "2026-11-24 10:00:01 UTC:10.0.0.1(5432):app@shop:[77]:LOG:  duration: 15.2 ms  plan:\n",
    "\tQuery Text: SELECT * FROM t\n",
    "\tSeq Scan on t  (cost=0.00..1.01 rows=1 width=4)\n",
    '2026-11-24 10:00:00.123 UTC,"app","shop",4242,"127.0.0.1:5",x,1,"SELECT",2026-11-24 10:00:00 UTC,3/4,0,'
    'LOG,00000,"duration: 1.5 ms  statement: SELECT 2",,,,,,,,,"psql","client backend",,0\n',
    '{"timestamp":"2026-11-24 10:00:00.123 UTC","pid":1,"error_severity":"LOG","message":"duration: 2 ms  statement: '
    'SELECT 3"}\n',
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400), st.sampled_from(["auto", "stderr", "csvlog", "jsonlog"]))
def test_random_text_never_raises(text: str, fmt: str) -> None:
    result = parse_text(text, fmt)
    summarize(result.entries)
    assert len(result.entries) <= result.records
    assert all(e.duration_ms >= 0 for e in result.entries)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(REAL), st.integers(0, 200), st.text(max_size=12)),
        min_size=1,
        max_size=12,
    )
)
def test_spliced_real_lines_never_raise(parts: list[tuple[str, int, str]]) -> None:
    text = "".join(line[:cut] + noise + line[cut:] for line, cut, noise in parts)
    result = parse_text(text)
    for stats in summarize(result.entries):
        assert stats.count >= 1
        assert stats.max >= stats.p95 >= 0


def test_intact_real_lines_all_parse() -> None:
    stderr = parse_text("".join(REAL[:8]))
    assert stderr.malformed == 0
    kinds = [e.kind for e in stderr.entries]
    assert kinds == ["statement", "parse", "execute", "plan"]
    execute = stderr.entries[2]
    assert execute.statement == "SELECT * FROM t WHERE a = $1\nAND b = 2"
    assert execute.parameters == "parameters: $1 = '42'"
    assert (execute.pid, execute.user, execute.database) == (4242, "app", "shop")
    # A tab line after the DETAIL is the rest of a bound value holding a newline: never part of the statement.
    multi_line_value = parse_text(REAL[2] + REAL[4].replace("'42'", "'line one") + "\tline two'\n")
    assert multi_line_value.entries[0].statement == "SELECT * FROM t WHERE a = $1"
    rds = stderr.entries[3]
    assert rds.pid == 77 and rds.statement == "SELECT * FROM t" and rds.plan and "Seq Scan" in rds.plan
    assert parse_text(REAL[8]).entries[0].statement == "SELECT 2"
    assert parse_text(REAL[9]).entries[0].duration_ms == 2.0
