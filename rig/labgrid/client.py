"""The rig's labgrid client: places from stations, and leases - reserve, wait in the queue,
acquire, hand out the slots, release - over one gRPC session.

labgrid's own client (``labgrid-client``) does each step as a process of its own (about 0.5-1 s
of start-up each); a job that reserves, waits, acquires, reads the port and releases would pay
five of them. :class:`Lab` keeps one :class:`labgrid.remote.client.ClientSession` for all of it,
its event loop running in a thread of its own, so the session's stream and keepalives go on while
the tests run.

A lease (:func:`lease`) makes one reservation per slot wanted (a reservation allocates one place
whose tags match), polls them while they wait - an allocated reservation expires after 60 s
unless polled or acquired - and acquires each place as it is allocated, one at a time: the
coordinator holds its global lock while an exporter acquires a place's resources (for a slot,
the Pi starting ``rig serve`` and vouching for the board, ~1.3 s simulated), so acquires sent
side by side queue there anyway. A place whose slot the Pi cannot serve now (a local ``rig``
command holds it) refuses the acquire: the Pi's reason is in the resource's ``extra``
(``rig_refused``) and is shown; the acquire is tried again until the lease's timeout. On every
way out - done, failure, Ctrl-C, SIGTERM through the safety net - every acquired place is
released and every reservation cancelled.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")  # before grpc loads: pytest and rig fork

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import grpc  # noqa: E402
from labgrid.remote.client import ClientSession  # noqa: E402
from labgrid.remote.common import Reservation, ReservationState  # noqa: E402
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2  # noqa: E402
from labgrid.remote.generated import labgrid_coordinator_pb2_grpc  # noqa: E402
from labgrid.resource import NetworkSerialPort  # noqa: E402
from labgrid.util.proxy import proxymanager  # noqa: E402

from rig.errors import BadInput, OperationError  # noqa: E402
from rig.labgrid.config import SLOT_CLASS, PlaceSpec  # noqa: E402

__all__ = ["Lab", "LabError", "Leased", "lease"]

POLL_EVERY = 0.5  # s between polls of waiting reservations (labgrid-client: 1 s)
RETRY_ACQUIRE_EVERY = 2.0  # s between acquires of a place whose slot the Pi refused
DEFAULT_PORT = 20408
CHANNEL_OPTIONS = [  # labgrid's client's (labgrid.remote.client.ClientSession)
    ("grpc.keepalive_time_ms", 7500),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.http2.ping_timeout_ms", 10000),
    ("grpc.http2.max_pings_without_data", 0),
]


class LabError(OperationError):
    """The lab could not give what was asked: no coordinator, no place in time, a refusal."""


@dataclass(frozen=True)
class Leased:
    """An acquired place and the slot behind it."""

    place: str
    url: str  # rfc2217://host:port (through labgrid's SSH proxy if the exporter needs one)
    board: str
    station: str
    slot: str
    expected_mac: str | None
    waited: float  # seconds from the reservation to the acquired place


class Lab:
    """One session with a labgrid coordinator (``HOST[:PORT]``)."""

    def __init__(self, address: str) -> None:
        self.address = proxymanager.get_grpc_address(address, default_port=DEFAULT_PORT)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lab", daemon=True)
        self._thread.start()
        try:
            self.session = self._run(self._start(), timeout=30)
        except BaseException as err:
            self._stop_loop()
            raise LabError(f"no labgrid coordinator at {self.address}: {err}") from err

    async def _start(self) -> ClientSession:
        session = ClientSession(self.address, self.loop)
        # A channel of its own: gRPC shares one connection among channels with the same target
        # and options (its global subchannel pool), and the coordinator keys its clients by
        # the peer address (`assert peer not in self.clients`), so a second session in this
        # process - labgrid's RemotePlace for drivers, another Lab - would break this one.
        await session.channel.close()
        session.channel = grpc.aio.insecure_channel(
            self.address, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
        )
        session.stub = labgrid_coordinator_pb2_grpc.CoordinatorStub(session.channel)
        await session.start()
        return session

    def _run(self, coro, timeout: float | None = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _call(self, method: str, request, timeout: float = 60):
        async def call():
            return await getattr(self.session.stub, method)(request)

        try:
            return self._run(call(), timeout)
        except grpc.aio.AioRpcError as err:
            raise LabError(f"{method}: {err.details()}") from err

    def sync(self) -> None:
        """Wait until this session has every update the coordinator sent so far."""
        self._run(self.session.sync_with_coordinator())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.session.stop(), timeout=10)
            self._run(self.session.close(), timeout=10)
        self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- places ---------------------------------------------------------------------------------
    def places(self) -> dict:
        self.sync()
        return dict(self.session.places)

    def ensure_places(self, specs: list[PlaceSpec]) -> list[str]:
        """Create or update one place per spec (tags, matches); returns what changed."""
        known = self.places()
        changes = []
        for spec in specs:
            place = known.get(spec.name)
            if place is None:
                self._call("AddPlace", pb2.AddPlaceRequest(name=spec.name))
                changes.append(f"created place {spec.name}")
                existing, tags = set(), {}
            else:
                existing = {str(m) for m in place.matches}
                tags = dict(place.tags)
            for pattern in spec.matches:
                if pattern not in existing:
                    request = pb2.AddPlaceMatchRequest(placename=spec.name, pattern=pattern)
                    self._call("AddPlaceMatch", request)
                    changes.append(f"{spec.name}: match {pattern}")
            if tags != {**tags, **spec.tags}:
                request = pb2.SetPlaceTagsRequest(placename=spec.name, tags=spec.tags)
                self._call("SetPlaceTags", request)
                changes.append(
                    f"{spec.name}: tags {' '.join(f'{k}={v}' for k, v in spec.tags.items())}"
                )
        self.sync()
        return changes

    # -- reservations and acquires ----------------------------------------------------------------
    def reserve(self, filters: dict[str, str], prio: float = 0.0) -> str:
        main = pb2.Reservation.Filter(filter=filters)
        request = pb2.CreateReservationRequest(filters={"main": main}, prio=prio)
        return Reservation.from_pb2(self._call("CreateReservation", request).reservation).token

    def poll(self, token: str) -> Reservation:
        request = pb2.PollReservationRequest(token=token)
        return Reservation.from_pb2(self._call("PollReservation", request).reservation)

    def cancel(self, token: str) -> None:
        with contextlib.suppress(LabError):
            self._call("CancelReservation", pb2.CancelReservationRequest(token=token))

    def acquire(self, place: str) -> None:
        """Acquire ``place``; a refusal names the Pi's reason (``rig_refused``) if it gave one."""
        try:
            self._call("AcquirePlace", pb2.AcquirePlaceRequest(placename=place))
        except LabError as err:
            self.sync()
            reasons = [e.extra.get("rig_refused") for e in self._resources_of(place)]
            reason = "; ".join(r for r in reasons if r)
            raise LabError(f"{place}: {reason or err}") from err
        self.sync()

    def release(self, place: str) -> None:
        self._call("ReleasePlace", pb2.ReleasePlaceRequest(placename=place))

    def _resources_of(self, name: str) -> list:
        place = self.session.places.get(name)
        if place is None:
            return []
        found = []
        for exporter, groups in self.session.resources.items():
            for group, resources in groups.items():
                for rname, entry in resources.items():
                    if place.hasmatch((exporter, group, entry.cls, rname)):
                        found.append(entry)
        return found

    def slot_of(self, place: str, waited: float) -> Leased:
        """The acquired ``place``'s slot: the served port's URL and the slot's facts."""
        entries = self._resources_of(place)
        port = next((e for e in entries if e.cls == "NetworkSerialPort"), None)
        facts = next((e for e in entries if e.cls == SLOT_CLASS), None)
        if port is None or not port.args.get("port"):
            raise LabError(f"{place}: no served port (is its exporter `rig labgrid exporter`?)")
        resource = NetworkSerialPort(None, None, host=port.args["host"], port=port.args["port"])
        resource.extra = port.extra
        host, number = proxymanager.get_host_and_port(resource)
        extra = port.extra
        args = facts.args if facts is not None else {}
        return Leased(
            place=place,
            url=f"rfc2217://{host}:{number}",
            board=str(args.get("board") or extra.get("rig_board")),
            station=str(args.get("station") or extra.get("rig_station")),
            slot=str(args.get("slot") or extra.get("rig_slot")),
            expected_mac=args.get("expected_mac") or extra.get("rig_expected_mac") or None,
            waited=waited,
        )


Progress = Callable[[str], None]


@contextlib.contextmanager
def lease(
    address: str,
    filters: list[dict[str, str]],
    *,
    timeout: float = 600.0,
    progress: Progress | None = None,
) -> Iterator[list[Leased]]:
    """One place per entry of ``filters`` (tags it must have; ``name`` is the place's name),
    acquired; released on every way out."""
    if not filters:
        raise BadInput("a lease needs at least one place")
    say = progress or (lambda line: None)
    with Lab(address) as lab:
        t0 = time.monotonic()
        tokens: list[str] = []
        acquired: dict[str, str] = {}  # token -> place
        try:
            tokens += [lab.reserve(f) for f in filters]
            wanted = ", ".join(sorted({_tags(f) for f in filters}))
            say(f"lab: {len(tokens)} reservation(s) for {wanted} at {lab.address}")
            leased = _wait_and_acquire(lab, tokens, acquired, t0 + timeout, say)
            yield [lab.slot_of(place, leased[place] - t0) for place in acquired.values()]
        finally:
            # Reservations first: the coordinator schedules the queue when a place is released,
            # and counts a place as free only once its reservation is gone (cancelling after the
            # release leaves the next job waiting for the coordinator's next periodic round).
            for token in tokens:
                lab.cancel(token)
            for place in acquired.values():
                with contextlib.suppress(Exception):
                    lab.release(place)
                    say(f"lab: released {place}")


def _wait_and_acquire(
    lab: Lab, tokens: list[str], acquired: dict[str, str], deadline: float, say: Progress
) -> dict[str, float]:
    """Poll the reservations (which keeps them alive) and acquire each allocated place, until
    all are acquired or ``deadline``; returns when each place was acquired."""
    when: dict[str, float] = {}
    refused: dict[str, float] = {}  # place -> when to try again
    last_note = 0.0
    while len(acquired) < len(tokens):
        now = time.monotonic()
        states = {}
        for token in tokens:
            if token in acquired:
                continue
            res = lab.poll(token)
            states[token] = res.state
            place = (res.allocations.get("main") or [None])[0]
            if res.state is ReservationState.allocated and place and refused.get(place, 0) <= now:
                try:
                    lab.acquire(place)
                except LabError as err:
                    refused[place] = now + RETRY_ACQUIRE_EVERY
                    say(f"lab: {err} - trying again")
                    continue
                acquired[token], when[place] = place, time.monotonic()
                say(f"lab: acquired {place}")
            elif res.state in (ReservationState.expired, ReservationState.invalid):
                raise LabError(f"reservation {token} is {res.state.name}")
        if len(acquired) == len(tokens):
            break
        if now >= deadline:
            waiting = sum(1 for s in states.values() if s is ReservationState.waiting)
            raise LabError(
                f"no place for {len(tokens) - len(acquired)} of {len(tokens)} reservation(s) "
                f"within the timeout ({waiting} still waiting in the queue; acquired: "
                f"{', '.join(acquired.values()) or 'none'})"
            )
        if now - last_note >= 10:
            last_note = now
            say(f"lab: waiting in the queue: {len(acquired)} of {len(tokens)} place(s) acquired")
        time.sleep(POLL_EVERY)
    return when


def _tags(filters: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in filters.items())
