"""The SQLite room log run on a script one request at a time and in batches, against answers expected of it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chatcore import History, Load, LogResult
from chatcore.actions import Expire, LogRequest
from transports.storage.sqlite import Database


def check_in_batches(
    folder: Path, requests: Sequence[LogRequest | Expire], expected: Sequence[LogResult],
    sizes: Sequence[int] = (1, 7, 100),
) -> None:
    """One new database per batch size in ``folder``: one at a time it answers ``expected``; in batches, reads see the
    whole batch's writes, so only the other answers are compared."""
    reads = {request.ticket for request in requests if isinstance(request, Load | History)}

    def writes(results: Sequence[LogResult]) -> list[LogResult]:
        return [result for result in results if getattr(result, "ticket", None) not in reads]

    for size in sizes:
        database = Database.open(folder / f"by {size}.db")
        try:
            results = [result for start in range(0, len(requests), size)
                       for result in database.run(requests[start:start + size])]
        finally:
            database.close()
        if size == 1:
            assert results == expected
        else:
            assert writes(results) == writes(expected)
