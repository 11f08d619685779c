"""The lab: a station's slots as part of a labgrid farm (the ``labgrid`` extra; docs/lab.md).

* :mod:`rig.labgrid.config` - exporter config and places from a station;
* :mod:`rig.labgrid.export` - the gated export class and ``rig labgrid exporter``;
* :mod:`rig.labgrid.client` - places, reservations, leases over one coordinator session;
* :mod:`rig.labgrid.station` - leased places as a station of remote slots (``rig flash``);
* :mod:`rig.labgrid.drivers` - labgrid drivers and a strategy (``imports: [rig.labgrid.drivers]``);
* :mod:`rig.labgrid.pytest_plugin` - ``pytest --board l7x --lg-coordinator ...``;
* :mod:`rig.labgrid.serialpkg` - which ``serial`` package won (pyserial or pyserial-labgrid).

The top layer, beside :mod:`rig.cli` and :mod:`rig.pytest_plugin`; the only part of the rig that
imports labgrid (import-linter contracts in pyproject.toml). This package imports nothing itself,
so the pytest plugin loads without the extra.
"""
