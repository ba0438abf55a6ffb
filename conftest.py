"""Shared pytest setup (tests/ and cosim/): the `--regress` switch for heavy sweeps and reproducible seeds.

Every randomized test takes the `seed` fixture. By default a test's seed is derived from its node id
(stable from run to run); `--seed N` forces one, `--seed random` draws a fresh one. On failure the
report gets a section with the seed and the one-line command that reproduces the failure.
"""

from __future__ import annotations

import os
import random
import shlex
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# `make test` is deterministic (derandomized hypothesis: the same examples every run, so CI cannot
# flake on a newly drawn case); `make regress` explores fresh random examples. Either way a failure
# prints the falsifying example and hypothesis's reproduce blob.
settings.register_profile("fixed", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))

ROOT = Path(__file__).resolve().parent
SEED_KEY = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tpesim")
    group.addoption("--regress", action="store_true", default=False,
                    help="also run tests marked `regress` (heavy sweeps; `make regress`)")
    group.addoption("--seed", default=None, metavar="N|random",
                    help="seed of randomized tests (default: derived from each test's id)")


def pytest_configure(config: pytest.Config) -> None:
    opt = config.getoption("--seed")
    if opt is not None and opt != "random" and not opt.lstrip("-").isdigit():
        raise pytest.UsageError(f"--seed must be an integer or 'random', not {opt!r}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--regress"):
        return
    skip = pytest.mark.skip(reason="heavy sweep: run with --regress (make regress)")
    for item in items:
        if item.get_closest_marker("regress") is not None:
            item.add_marker(skip)


def _seed_for(request: pytest.FixtureRequest) -> int:
    opt = request.config.getoption("--seed")
    if opt is None:
        return zlib.crc32(request.node.nodeid.encode())
    if opt == "random":
        return random.SystemRandom().randrange(1 << 32)
    return int(opt)


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The test's random seed; printed with a reproduce command if the test fails."""
    s = _seed_for(request)
    request.node.stash[SEED_KEY] = s
    return s


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    s = item.stash.get(SEED_KEY, None)
    if report.failed and s is not None:
        pytest_bin = Path(sys.executable).with_name("pytest")
        cmd = (f"cd {shlex.quote(str(ROOT))} && {pytest_bin} -q {shlex.quote(item.nodeid)} "
               f"--seed {s}")
        report.sections.append(("tpesim seed", f"seed = {s}\nreproduce: {cmd}"))
    return report
