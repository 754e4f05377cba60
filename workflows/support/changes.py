"""The changes an order's history records (``workflow.patched``), asked in one place.

Each patch a live run asks costs two history events: its marker, and the upsert of the
``TemporalChangeVersion`` search attribute that the SDK's core adds to every patch (a
visibility write besides). A single-line order asked six on its way (the stock facts it reads,
the credential its start carries, the outbox's three, its delivery's reports read): twelve of
its events, for changes every order started today makes anyway.

Orders started from now on record one marker, ``fold``, as their first command: it stands for
every change in ``folded``. An order whose history lacks it (started before) asks each change
as it always did, at the same points, so its history replays and it runs on as it started.
A change made later is a patch of its own, asked here as well.
"""

from __future__ import annotations

from temporalio import workflow


class Changes:
    def __init__(self, fold: str, folded: frozenset[str]) -> None:
        # Asked first, in the workflow's first activation (see the module's docstring).
        self._all = workflow.patched(fold)
        self._folded = folded

    def patched(self, change: str) -> bool:
        """Whether this run makes ``change``: ``workflow.patched`` for one the fold does not
        stand for, or for an order started before the fold."""
        if self._all and change in self._folded:
            return True
        return workflow.patched(change)
