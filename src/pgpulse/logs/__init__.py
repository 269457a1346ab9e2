"""PostgreSQL server logs (``duration:`` lines, auto_explain plans) turned into a ranked list of query shapes,
streamed in bounded memory whatever the size of the log."""

from pgpulse.logs.parse import LogEntry, LogReadError, LogStream, ParseResult, parse_text, read_logs
from pgpulse.logs.summary import Limits, QueryStats, ShapeAggregator, SortKey, Summary, aggregate, rank, summarize

__all__ = [
    "Limits",
    "LogEntry",
    "LogReadError",
    "LogStream",
    "ParseResult",
    "QueryStats",
    "ShapeAggregator",
    "SortKey",
    "Summary",
    "aggregate",
    "parse_text",
    "rank",
    "read_logs",
    "summarize",
]
