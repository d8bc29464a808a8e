"""The soak's fault plan: a seed names a run, every kind is dealt, every fault fits the topology."""

from __future__ import annotations

from bench.soak_faults import KINDS, LINK_KINDS, SKEW_STEP_MS, plan
from federation.request_signing import MAX_SKEW_MS

HOST, MEMBERS = "h", ("m1", "m2")


def test_a_seed_names_the_plan():
    assert plan(5, 20, host=HOST, members=MEMBERS) == plan(5, 20, host=HOST, members=MEMBERS)
    assert plan(5, 20, host=HOST, members=MEMBERS) != plan(6, 20, host=HOST, members=MEMBERS)


def test_every_run_of_len_kinds_cycles_deals_each_kind_once():
    cycles = plan(11, 3 * len(KINDS), host=HOST, members=MEMBERS)
    for start in range(0, len(cycles), len(KINDS)):
        assert sorted(c.faults[0].kind for c in cycles[start:start + len(KINDS)]) == sorted(KINDS)


def test_faults_target_the_topology_and_stay_in_their_bounds():
    links = {(HOST, m) for m in MEMBERS} | {(m, HOST) for m in MEMBERS}
    for cycle in plan(3, 200, host=HOST, members=MEMBERS, hold_s=(1.0, 2.0), gap_s=(0.5, 1.0)):
        assert 0.5 <= cycle.gap_s <= 1.0
        assert 1 <= len(cycle.faults) <= 2
        if len(cycle.faults) == 2:  # one of each family, never two faults on one thing
            assert (cycle.faults[0].kind in LINK_KINDS) != (cycle.faults[1].kind in LINK_KINDS)
        for fault in cycle.faults:
            assert 1.0 <= fault.hold_s <= 2.0
            assert set(fault.links) <= links and set(fault.nodes) <= {HOST, *MEMBERS}
            assert bool(fault.links) == (fault.kind in LINK_KINDS)
            if fault.kind == "clock":
                assert 0 < abs(fault.step_ms) <= MAX_SKEW_MS  # a step signed requests survive
            if fault.kind == "skew":
                assert abs(fault.step_ms) == SKEW_STEP_MS > MAX_SKEW_MS


def test_the_host_is_killed_too():
    kills = {f.nodes[0] for c in plan(1, 100, host=HOST, members=MEMBERS) for f in c.faults if f.kind == "kill"}
    assert kills == {HOST, *MEMBERS}


def test_no_overlap_means_one_fault_per_cycle():
    assert all(len(c.faults) == 1 for c in plan(2, 50, host=HOST, members=MEMBERS, overlap=0.0))
