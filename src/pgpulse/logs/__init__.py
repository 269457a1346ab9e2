"""PostgreSQL server logs (``duration:`` lines, auto_explain plans) turned into a ranked list of query shapes."""

from pgpulse.logs.parse import LogEntry, ParseResult, parse_text, read_logs
from pgpulse.logs.summary import QueryStats, SortKey, rank, summarize

__all__ = ["LogEntry", "ParseResult", "QueryStats", "SortKey", "parse_text", "rank", "read_logs", "summarize"]
