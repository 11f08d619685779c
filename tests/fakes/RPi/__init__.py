"""Fake ``RPi`` package: put it in ``sys.modules["RPi"]``; ``import RPi.GPIO`` then runs
``GPIO.py`` here afresh (new state per import).

``BOARD`` is the machine the fake module believes it runs on, read when ``RPi.GPIO`` is
imported: a Raspberry Pi model string, ``"Raspberry Pi 5 Model B"`` (imports, but ``setup()``
fails as the real RPi.GPIO does on a Pi 5), or ``None`` (not a Pi: the import raises).
"""

BOARD: str | None = "Raspberry Pi 4 Model B Rev 1.4"
