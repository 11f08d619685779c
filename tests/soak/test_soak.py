"""The full fault matrix: every kind x RIG_SOAK_SEEDS seeds (default 20). `make soak`."""

from __future__ import annotations

import pytest

from .fault_matrix import KINDS, env_seeds, run_case

SEEDS = env_seeds(20)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", range(SEEDS))
@pytest.mark.parametrize("kind", KINDS)
def test_fault_case(kind, seed, tmp_path, record_property):
    result = run_case(kind, seed, tmp_path)
    record_property("soak", result.to_json())
    assert not result.violations, result.violations
