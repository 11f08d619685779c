"""Simulated boards in a station: the variants the simulator builds, and a slot's options.

:data:`SIM_VARIANTS` is the one table of what a simulated board variant is - its input contacts,
its power physics, and which input each relay role switches. The station config checks a slot's
relays against it, the station factory wires relays to contacts with it, and the simulator's
board takes its physics from it (design.md "Board physics", fact sheet section 7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict, WithJsonSchema, model_validator

from .errors import fail
from .faults import FaultSpec
from .types import INT_OR_HEX, FilePath, FrozenModel, Mac, StrictBool, int_like

__all__ = ["SIM_VARIANTS", "SimEfuses", "SimSlot", "SimVariant"]


@dataclass(frozen=True)
class SimVariant:
    """A kind of simulated board (fact sheet section 7, design.md "Board physics").

    * ``l7x`` - Vigotech VG-L7X: CH330 bridge without DTR/RTS, soft power latch. Pressing the
      button powers the ESP32; a firmware that boots latches the supply on, so its board stays
      on after the button is released (a later press-and-release switches it off, as the
      firmware's button handler does). The ROM does not latch: in download mode the board is
      powered only while the button is held, and releasing it browns the chip out.
    * ``devkit`` - ESP32-DevKitC style: powered from USB all the time, EN and IO0 inputs, and the
      classic two-transistor auto-reset circuit on its bridge's DTR/RTS (``rig.sim.bridge``).

    ``inputs`` are its contacts, what a relay or a finger closes (``power`` button, ``io0`` to
    GND, ``en`` to GND); ``contacts`` maps each relay role a slot may wire to the contact it
    switches (the reset relay shorts EN to GND). ``soft_power_latch``: a booted firmware keeps
    the supply on after the power button is released (the ROM does not).
    ``always_powered``: powered from USB. ``modem_lines``: the bridge carries DTR/RTS to the
    classic auto-reset circuit (over RFC 2217).
    """

    name: str
    inputs: tuple[str, ...]
    contacts: Mapping[str, str]
    soft_power_latch: bool
    always_powered: bool
    modem_lines: bool
    description: str

    @property
    def roles(self) -> tuple[str, ...]:
        """The relay roles a slot of this variant may wire."""
        return tuple(self.contacts)


SIM_VARIANTS: dict[str, SimVariant] = {
    "l7x": SimVariant(
        "l7x",
        inputs=("power", "io0", "en"),
        contacts={"io0": "io0", "power": "power", "reset": "en"},
        soft_power_latch=True,
        always_powered=False,
        modem_lines=False,
        description="Vigotech VG-L7X: CH330 without DTR/RTS, soft power latch",
    ),
    "devkit": SimVariant(
        "devkit",
        inputs=("en", "io0"),
        contacts={"io0": "io0", "reset": "en"},
        soft_power_latch=False,
        always_powered=True,
        modem_lines=True,
        description="ESP32-DevKitC: USB powered, EN and IO0",
    ),
}
VariantName = Literal[tuple(SIM_VARIANTS)]  # type: ignore[valid-type]


def _flash_id(value: Any) -> int:
    value = int_like(value, "flash_id")
    if not 0 <= value <= 0xFFFFFF:
        raise fail(f"flash_id is the 3-byte RDID answer, 0..0xFFFFFF (got {value:#x})")
    return value


FlashId = Annotated[int, BeforeValidator(_flash_id), WithJsonSchema(INT_OR_HEX)]


class SimEfuses(FrozenModel):
    """The security eFuses of a simulated ESP32 (names as espefuse shows them)."""

    flash_crypt_cnt: Annotated[int, Strict(), Field(ge=0, le=0x7F)] = 0  # odd bit count: on
    abs_done_0: StrictBool = False  # secure boot v1
    abs_done_1: StrictBool = False  # secure boot v2


class SimSlot(FrozenModel):
    """Options for a simulated board in a slot (used with ``pins: {backend: sim}``)."""

    variant: VariantName
    seed: str | None = None  # derives the factory MAC (in a station: defaults to the slot id)
    mac: Mac | None = None
    flash_image: FilePath | None = None  # initial flash content (a whole-flash image file)
    vendor_flash: StrictBool = True  # without flash_image: the synthetic vendor flash, else erased
    io0_connected: StrictBool = True  # fault: the IO0 relay does not reach the board
    fail_connects: Annotated[int, Strict(), Field(ge=0, le=100)] = 0  # fault: ignore N syncs
    # The USB bridge's fastest rate; above it the line runs off-rate (a bridge without 2 Mbaud).
    max_baud: Annotated[int, Strict(), Field(gt=0)] | None = None
    # Realistic timing: the UART paced at baud/10 bytes/s, datasheet NOR erase/program times.
    realtime: StrictBool = False
    # With realtime: the scale of the chip-side flash-read and MD5 times (rig.sim.loader.costs,
    # estimates from datasheet facts); the bench runs 0.5 and 2 to show how much they matter.
    chip_costs: Annotated[float, Field(ge=0, le=100)] = 1.0
    # Injected faults (docs/faults.md), seeded by fault_seed (default: the board's seed).
    faults: tuple[FaultSpec, ...] = ()
    fault_seed: Annotated[str, Strict()] | Annotated[int, Strict()] | None = None
    # The flash chip's RDID answer (manufacturer | type << 8 | capacity << 16), e.g. 0x1540EF
    # for a chip reporting 2 MB; default: the Winbond part of the array's size (0x1640EF).
    flash_id: FlashId | None = None
    efuses: SimEfuses = Field(default_factory=SimEfuses)  # flash encryption, secure boot

    @model_validator(mode="after")
    def _image(self) -> SimSlot:
        if self.flash_image is not None and not self.flash_image.is_file():
            raise fail(f"flash image {self.flash_image} does not exist", "flash_image")
        return self
