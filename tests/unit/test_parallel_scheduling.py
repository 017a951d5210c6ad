"""Up mode's scheduler (steps/harness/parallel.py): stack-changing scenarios only once nothing else runs."""
from __future__ import annotations

from steps.harness.parallel import STACK_CHANGING, StackChangingLast, write_groups


class Config:
    def __init__(self, workers: int):
        self.values = {"tx": [f"{workers}*popen"], "maxschedchunk": None, "loadscopereorder": False}
        self.option = type("Option", (), {"loadscopereorder": False})()

    def getvalue(self, name):
        return self.values[name]

    getoption = getvalue


class Node:
    def __init__(self, name: str, ran: list):
        self.name, self.ran, self.queue, self.shutting_down = name, ran, [], False
        self.gateway = type("Gateway", (), {"id": name})()

    def send_runtest_some(self, indices):
        self.queue.extend(indices)

    def shutdown(self):
        self.shutting_down = True

    def __repr__(self):
        return self.name


def _run(workers: int, collection: list, tmp_path) -> list:
    """Simulate: each round, every worker runs one queued item, but keeps its last one until told to
    stop or given more (as xdist's workers do). Returns (worker, item) in the order they ran."""
    # Groups as the workers write them; "t::x@g" names item "t::x" of group g.
    write_groups(tmp_path, "gw0", {item.split("@")[0]: item.split("@")[1] for item in collection if "@" in item})
    collection = [item.split("@")[0] for item in collection]
    sched = StackChangingLast(Config(workers), groups_dir=tmp_path)
    ran: list = []
    nodes = [Node(f"gw{n}", ran) for n in range(workers)]
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    for _ in range(1000):
        if sched.tests_finished and all(not n.queue for n in nodes):
            break
        for node in nodes:
            if node.queue and (len(node.queue) > 1 or node.shutting_down):
                index = node.queue.pop(0)
                ran.append((node.name, collection[index], frozenset(n.name for n in nodes if n.queue)))
                sched.mark_test_complete(node, index)
    return ran


def test_stack_changing_items_run_last_on_one_worker_with_nothing_else_running(tmp_path):
    read_only = [f"t::read_{n}" for n in range(40)]
    long_polls = [f"t::poll_{n}@long_polls" for n in range(2)]
    changing = [f"t::change_{n}@{STACK_CHANGING}" for n in range(6)]
    ran = _run(3, read_only[:20] + long_polls + read_only[20:] + changing, tmp_path)
    long_polls, changing = [i.split("@")[0] for i in long_polls], [i.split("@")[0] for i in changing]
    assert sorted(item for _, item, _ in ran) == sorted(read_only + long_polls + changing)
    order = [item for _, item, _ in ran]
    first_change = order.index(changing[0])
    assert set(order[:first_change]) == set(read_only + long_polls), "a read-only item ran after a stack-changing one"
    assert order[first_change:] == changing, "stack-changing items out of order"
    assert len({worker for worker, item, _ in ran if item in changing}) == 1
    assert len({worker for worker, item, _ in ran if item in long_polls}) == 1, "a group was split"
    for worker, item, busy in ran:
        if item in changing:
            assert busy <= {worker}, f"{item} ran while {busy - {worker}} still had items"


def test_only_stack_changing_items(tmp_path):
    changing = [f"t::change_{n}@{STACK_CHANGING}" for n in range(3)]
    assert [item for _, item, _ in _run(3, changing, tmp_path)] == [item.split("@")[0] for item in changing]


def test_without_stack_changing_items_it_is_plain_loadgroup_scheduling(tmp_path):
    read_only = [f"t::read_{n}" for n in range(20)]
    assert sorted(item for _, item, _ in _run(2, read_only, tmp_path)) == sorted(read_only)
