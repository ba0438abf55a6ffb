"""The event-driven kernel: time order, FIFO order at equal times, `until`, idle cost, errors.

Run against both the compiled extension and its pure-Python source.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

import pytest

import tpesim.event

CORE_SRC = Path(tpesim.event.__file__).with_name("_core.py")


def _interpreted_core():
    name = "tpesim.event._core__test_interpreted"
    if name not in sys.modules:
        loader = importlib.machinery.SourceFileLoader(name, str(CORE_SRC))
        mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
        loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


@pytest.fixture(params=["compiled", "interpreted"])
def Simulator(request):
    if request.param == "compiled":
        from tpesim.event import _core

        if str(_core.__file__).endswith(".py"):
            pytest.skip("the compiled kernel is not in use (not built, or TPESIM_INTERPRETED)")
        return _core.Simulator
    return _interpreted_core().Simulator


class Recorder:
    """Logs (name, time) of every wake-up; `plan` gives the next wake-up after each one."""

    def __init__(self, name, log, plan=()):
        self.name = name
        self.log = log
        self.plan = list(plan)
        self.wakes = 0

    def wake(self, sim, now):
        self.wakes += 1
        self.log.append((self.name, now))
        return self.plan.pop(0) if self.plan else -1


def test_time_order(Simulator):
    sim = Simulator()
    log = []
    for name, at in [("c", 30), ("a", 10), ("d", 40), ("b", 20), ("e", 0)]:
        sim.schedule(Recorder(name, log), at)
    assert sim.pending() == 5
    assert sim.run() == 40
    assert log == [("e", 0), ("a", 10), ("b", 20), ("c", 30), ("d", 40)]
    assert sim.pending() == 0


def test_same_time_is_fifo(Simulator):
    sim = Simulator()
    log = []
    comps = [Recorder(f"c{i}", log) for i in range(20)]
    for c in comps:
        sim.schedule(c, 7)
    sim.run()
    assert log == [(f"c{i}", 7) for i in range(20)]


def test_reschedule_at_now_goes_behind_those_already_waiting(Simulator):
    sim = Simulator()
    log = []
    a = Recorder("a", log, plan=[5])  # woken at 5, asks for 5 again
    b = Recorder("b", log)
    sim.schedule(a, 5)
    sim.schedule(b, 5)
    sim.run()
    assert log == [("a", 5), ("b", 5), ("a", 5)]


def test_self_rescheduling_component(Simulator):
    sim = Simulator()
    log = []
    sim.schedule(Recorder("p", log, plan=[3, 9, 100]), 1)
    assert sim.run() == 100
    assert [t for _, t in log] == [1, 3, 9, 100]


def test_until_stops_and_resumes(Simulator):
    sim = Simulator()
    log = []
    sim.schedule(Recorder("p", log, plan=[10, 11, 20, 30]), 0)
    assert sim.run(until=10) == 10  # a wake-up exactly at `until` still runs
    assert [t for _, t in log] == [0, 10]
    assert sim.pending() == 1
    assert sim.run(until=15) == 15  # 11 runs, 20 is past `until`
    assert [t for _, t in log] == [0, 10, 11]
    assert sim.run() == 30
    assert [t for _, t in log] == [0, 10, 11, 20, 30]


def test_until_before_first_event(Simulator):
    sim = Simulator()
    log = []
    sim.schedule(Recorder("p", log), 50)
    assert sim.run(until=49) == 49
    assert log == [] and sim.pending() == 1


def test_idle_components_cost_nothing(Simulator):
    sim = Simulator()
    log = []
    idle = [Recorder(f"idle{i}", log) for i in range(1000)]  # never scheduled
    sleeper = Recorder("sleeper", log)  # sleeps (-1) after its first wake-up

    class Waker:
        def wake(self, sim, now):
            log.append(("waker", now))
            if now == 1000:
                sim.schedule(sleeper, 5000)  # someone else wakes the sleeper much later
            return -1

    sim.schedule(sleeper, 0)
    sim.schedule(Waker(), 1000)
    assert sim.run() == 5000
    assert log == [("sleeper", 0), ("waker", 1000), ("sleeper", 5000)]
    assert len(log) == 3  # 5000 cycles, 1001 components, three wake-ups
    assert all(c.wakes == 0 for c in idle)


def test_long_gaps_are_free(Simulator):
    sim = Simulator()
    log = []
    sim.schedule(Recorder("p", log, plan=[1 << 40, 1 << 50]), 0)
    assert sim.run() == 1 << 50
    assert len(log) == 3


@pytest.mark.parametrize(("now", "at"), [(0, -1), (0, -100)])
def test_negative_schedule_error(Simulator, now, at):
    sim = Simulator()
    with pytest.raises(ValueError) as info:
        sim.schedule(Recorder("p", []), at)
    assert str(info.value) == f"wake-up time must be >= now ({now}), not {at}"


def test_schedule_in_the_past_error(Simulator):
    sim = Simulator()
    sim.schedule(Recorder("p", [], plan=[3]), 5)  # woken at 5, asks for 3
    with pytest.raises(ValueError) as info:
        sim.run()
    assert str(info.value) == "wake-up time must be >= now (5), not 3"


def test_empty_run(Simulator):
    assert Simulator().run() == 0


def test_clock_and_event_count_are_visible(Simulator, request):
    sim = Simulator()
    log = []
    sim.schedule(Recorder("p", log, plan=[4, 9]), 2)
    sim.run(until=6)
    assert sim.now == 6 and sim.events == 2
    sim.run()
    assert sim.now == 9 and sim.events == 3
