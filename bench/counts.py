"""How much each scenario does: the issue's counts, and a quick set for checking the harness."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "Counts"]


@dataclass(frozen=True, slots=True)
class Counts:
    latency_messages: int
    warmup_messages: int
    throughput_messages: int
    throughput_agents: int
    catch_up_events: int
    fanout_members: int
    fanout_messages: int
    memory_networks: int
    memory_events: int
    idle_settle_s: float


FULL = Counts(latency_messages=1_000, warmup_messages=50, throughput_messages=20_000, throughput_agents=8,
              catch_up_events=50_000, fanout_members=5, fanout_messages=1_000, memory_networks=1_000,
              memory_events=1_000_000, idle_settle_s=5.0)

QUICK = Counts(latency_messages=100, warmup_messages=10, throughput_messages=1_000, throughput_agents=8,
               catch_up_events=1_000, fanout_members=5, fanout_messages=100, memory_networks=10,
               memory_events=10_000, idle_settle_s=2.0)
