"""The changes an order's history records (``workflow.patched``), asked in one place.

Each patch a live run asks costs two history events: its marker, and the upsert of the
``TemporalChangeVersion`` search attribute that the SDK's core adds to every patch (a
visibility write besides). A single-line order asked six on its way (the stock facts it reads,
the credential its start carries, the outbox's three, its delivery's reports read): twelve of
its events, for changes every order started today makes anyway.

Orders started from now on record one marker, the newest fold, as their first command: it
stands for every change it folds, the changes of the folds before it included. An order whose
history holds an older fold (started on an older release) makes that fold's changes and asks
any later one as a patch of its own; an order whose history holds none (started before the
first fold) asks each change as it always did, at the same points, so its history replays and
it runs on as it started. A change made after the newest fold is a patch of its own, asked here
as well, until the next release folds it.
"""

from __future__ import annotations

from temporalio import workflow


class Changes:
    """Args:
    folds: each fold's marker and the changes it stands for, newest first; a fold stands for
        the changes of every fold after it in this list too.
    """

    def __init__(self, folds: list[tuple[str, frozenset[str]]]) -> None:
        # Asked first, in the workflow's first activation (see the module's docstring): the
        # newest fold first. A live run records it and asks no other; a replay finds the one
        # its history holds, or none.
        self._folded: frozenset[str] = frozenset()
        for i, (fold, _) in enumerate(folds):
            if workflow.patched(fold):
                self._folded = frozenset().union(*(changes for _, changes in folds[i:]))
                break

    def patched(self, change: str) -> bool:
        """Whether this run makes ``change``: true for a change its fold stands for, otherwise
        ``workflow.patched``."""
        if change in self._folded:
            return True
        return workflow.patched(change)
