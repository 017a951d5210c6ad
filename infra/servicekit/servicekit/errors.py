"""How an error is written down in a log line or a health answer: on one line, bounded."""
from __future__ import annotations


def one_line(error: BaseException, limit: int = 300) -> str:
    """The error's message on one line, at most `limit` characters; its type when it has none."""
    return " ".join(str(error).split())[:limit] or type(error).__name__
