"""``rig serve``: a slot's serial port as an RFC 2217 endpoint whose DTR/RTS drive the relays
(:mod:`rig.operations.serve.server`), decoded by :mod:`rig.operations.serve.decoder`."""

from rig.operations.serve.decoder import AutoResetDecoder
from rig.operations.serve.server import ServeError, SlotServer, is_loopback, rfc2217_url

__all__ = ["AutoResetDecoder", "ServeError", "SlotServer", "is_loopback", "rfc2217_url"]
