"""Repository-level pytest configuration: say what the suite runs against in every report header.

CI logs on a self-hosted runner are read long after the run; the versions of the rig and of
esptool, and which station the rig would use, belong at the top of each one.
"""

from __future__ import annotations

import os


def pytest_report_header(config) -> list[str]:
    import esptool

    import rig

    station = os.environ.get("RIG_STATION") or "embedded simulated station"
    return [f"rig {rig.__version__}, esptool {esptool.__version__}, station: {station}"]


# Test modules whose tests share one costly module-scoped fixture and run whole on one xdist
# worker: tests/labgrid/test_farm.py shares one labgrid farm (coordinator, two exporters, their
# `rig serve`s) and its last test kills an exporter; test_serve.py and test_sim_rfc2217.py start
# every esptool session of the module at once in an autouse fixture (five and four esptool
# processes against in-process servers): spread over the workers, each worker that ran one of
# their tests started all the sessions again. tests/test_scheduling.py checks that every test
# module with an autouse module-scoped fixture is listed here.
ONE_WORKER_MODULES = (
    "tests/labgrid/test_farm.py",
    "tests/operations/test_serve.py",
    "tests/sim/test_sim_rfc2217.py",
)


def pytest_xdist_make_scheduler(config, log):
    """``--dist load``, except that each of :data:`ONE_WORKER_MODULES` goes whole to one worker.

    pytest-xdist's own ``--dist loadgroup`` (``xdist_group`` marks) does nothing on pytest 9: it
    renames the node ids through ``item._nodeid``, which pytest 9 no longer reads, so a group's
    tests spread over every worker and each worker built its own farm (four farms on two cores;
    a test could run after its worker's exporter was killed). The scheduler runs in the xdist
    controller, which sees node ids only, hence a list of modules rather than marks. The rig's
    own plugin schedules first when a board is selected (one worker per slot).
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER_MODULES else nodeid

    return OneWorkerModules(config, log)
