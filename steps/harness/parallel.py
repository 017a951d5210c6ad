"""Up mode on parallel workers: the scenarios that only read run side by side, then the ones that
stop, kill, pause or remove services run on one worker, one after another, once no other scenario is
running (they would break what the others read).

A pytest-xdist scheduler: loadgroup scheduling (scenarios sharing a limited resource stay together)
whose group STACK_CHANGING is held back. The groups come from the workers' collection, written to
`groups_dir` as {nodeid: group}: pytest-xdist 3.8's own way, a "@group" suffix it writes into the
nodeid, has no effect with pytest 9 (which derives the nodeid from elsewhere), so its loadgroup
scheduling kept no group together (pytest-dev/pytest-xdist#1386, open; its maintainers would pass the
groups separately, as this does). Once every other group is handed out, every worker but one
(the finisher) is told to stop. A worker runs its last item only when more arrive or it is told to
stop, so the finisher keeps its last one until the others are done, then gets the held group after it.
"""
from __future__ import annotations

import json
from pathlib import Path

from xdist.scheduler import LoadGroupScheduling

# The xdist_group of the stack-changing scenarios (fixtures.pytest_collection_modifyitems sets it).
STACK_CHANGING = "changes_stack"


def write_groups(groups_dir: Path, worker: str, groups: dict) -> None:
    """A worker's {nodeid: group} of its collection, written whole before the scheduler reads it."""
    partial = groups_dir / f".{worker}.json"
    partial.write_text(json.dumps(groups))
    partial.rename(groups_dir / f"{worker}.json")


class StackChangingLast(LoadGroupScheduling):
    def __init__(self, config, log=None, groups_dir: Path | None = None):
        super().__init__(config, log)
        self.finisher = None
        self.groups_dir = groups_dir
        self._groups: dict | None = None

    def _split_scope(self, nodeid: str) -> str:
        """The scenario's group, else the scenario alone. Every worker collects the same items: the
        first file read serves them all (each is whole once its worker has reported its collection)."""
        if self._groups is None:
            files = sorted(self.groups_dir.glob("*.json")) if self.groups_dir else []
            self._groups = json.loads(files[0].read_text()) if files else {}
        return self._groups.get(nodeid, nodeid)

    def _only_held_left(self) -> bool:
        return list(self.workqueue) == [STACK_CHANGING]

    def _assign_work_unit(self, node) -> None:
        """The next group other than the held one; with only the held one left, the finisher's turn."""
        if STACK_CHANGING not in self.workqueue:
            super()._assign_work_unit(node)
        elif not self._only_held_left():
            held = self.workqueue.pop(STACK_CHANGING)
            try:
                super()._assign_work_unit(node)
            finally:
                self.workqueue[STACK_CHANGING] = held
        else:
            self._wait_for_the_others(node)

    def _reschedule(self, node) -> None:
        if node.shutting_down:
            return
        if self._only_held_left():
            self._wait_for_the_others(node)
        else:
            super()._reschedule(node)

    def _wait_for_the_others(self, node) -> None:
        if node.shutting_down:
            return
        if self.finisher is None:
            self.finisher = node
        if node is not self.finisher:
            node.shutdown()
        self._release_when_alone()

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        super().mark_test_complete(node, item_index, duration)
        self._release_when_alone()

    def remove_node(self, node):
        crashed = super().remove_node(node)
        if node is self.finisher:
            self.finisher = None
            for other in list(self.assigned_work):
                self._reschedule(other)
        self._release_when_alone()
        return crashed

    def _release_when_alone(self) -> None:
        """The held group goes to the finisher once no other worker has anything left to run."""
        if not self._only_held_left() or self.finisher is None or self.finisher not in self.assigned_work:
            return
        if any(self._pending_of(work) for node, work in self.assigned_work.items() if node is not self.finisher):
            return
        self.workqueue.move_to_end(STACK_CHANGING, last=False)
        super()._assign_work_unit(self.finisher)
        self.finisher.shutdown()
