"""Known firmware behaviours: what real firmware does on a board, for a simulator that cannot.

**This table is a model, not the firmware.** The simulated ESP32 cannot execute Xtensa code;
a synthetic firmware carries what it prints in its image (:mod:`rig.images.console`), a real
one cannot. For real apps users flash, this table says what the console shows once the
second-stage bootloader has handed over (as seen on a board running that firmware) and what the
firmware answers (from the protocol of what it runs or forwards), keyed by the sha256 of the app
image as flashed (from the magic byte through the appended digest: ``sha256sum app.bin`` of the
file esptool writes). The files themselves are not part of the project (licences, size): only
what they were seen to print.

An app that is neither synthetic nor in this table gets the bootloader's load lines and then
:data:`rig.images.console.SIMULATED_APP_NOTE`, so a boot check waiting for a pattern can say
that the console came from a simulated board which does not execute firmware.

Delays are the model's: long enough to keep the order of events, short enough for tests; a
real firmware's timing (a WiFi connect attempt can take seconds) is not modelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["GRBL_BANNER", "KNOWN_FIRMWARE", "FirmwareBehaviour"]

GRBL_BANNER = "Grbl 1.1f ['$' for help]"  # what GRBL 1.1f prints at every reset (report.c)


@dataclass(frozen=True)
class FirmwareBehaviour:
    """One firmware's console: ``boot`` lines (delay in seconds before each) after the
    bootloader's "Loaded app" line, and ``answers``: what the host sends (one byte, or a line
    without its end) -> the lines printed back."""

    name: str
    observed: str  # where the behaviour comes from
    boot: tuple[tuple[float, str], ...]
    answers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


KNOWN_FIRMWARE: dict[str, FirmwareBehaviour] = {
    # The community GRBL bridge for the VG-L7X: an Arduino sketch built for a NodeMCU-32S, one
    # 838,848-byte app image for 0x10000 (no app descriptor, no bootloader, no partition table);
    # GPL-3.0, so the project does not ship it. Built with Arduino's default log level, the app
    # prints no ESP-IDF startup log. It reports its WiFi state ("WiFi not connected" without a
    # configured network, else "IP address:" and the address), then sends the board's Atmega328
    # a GRBL soft reset (0x18) and forwards what the Atmega prints: the GRBL 1.1f banner. The
    # L7X's GRBL runs on that Atmega; the ESP32 is a bridge, so what is typed on the console
    # reaches the Atmega and GRBL 1.1f answers (its report.c formats; grbl 1.1f is build
    # 20170801). Boot lines: issue 14, seen on a bench board.
    "a2834d44def243280c26447663af42357de228d6b8173b08e064b95cb69f8dad": FirmwareBehaviour(
        name="community GRBL bridge for the VG-L7X (Arduino, NodeMCU-32S)",
        observed="VG-L7X console at 115200 after flashing the app at 0x10000 (issue 14)",
        boot=((0.3, "WiFi not connected"), (0.05, ""), (0.01, GRBL_BANNER)),
        answers={
            "\x18": ("", GRBL_BANNER),  # soft reset: the Atmega restarts GRBL
            "?": ("<Idle|MPos:0.000,0.000,0.000|FS:0,0>",),  # GRBL 1.1 status report
            "$I": ("[VER:1.1f.20170801:]", "[OPT:V,15,128]", "ok"),  # GRBL 1.1f build info
        },
    ),
}
