"""An SNTP server on loopback for the meters' clocks: it answers NTP version 4 requests
(RFC 5905's 48-byte packet, server mode) with the host's time moved by a chosen offset, so a
test tells a meter's SNTP time from the host's clock. Until :meth:`SntpServer.synchronise` it
answers as a server that has no time yet (leap indicator 3, stratum 16), which a client may not
set its clock from."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from nishati_dev.processes import HOST

PACKET_LEN = 48
# Seconds from the NTP era (1900) to the unix epoch (1970).
NTP_TO_UNIX = 2_208_988_800
CLIENT_MODE = 3
SERVER_MODE = 4
VERSION = 4
UNSYNCHRONISED_LEAP = 3
UNSYNCHRONISED_STRATUM = 16
STRATUM = 1


def ntp_timestamp(unix_secs: float) -> bytes:
    """64-bit NTP timestamp: seconds since 1900 and the fraction, big-endian."""
    seconds = int(unix_secs) + NTP_TO_UNIX
    fraction = int((unix_secs % 1) * 2**32)
    return struct.pack("!II", seconds & 0xFFFF_FFFF, fraction)


def server_reply(request: bytes, unix_secs: float, synchronised: bool) -> bytes | None:
    """The answer to ``request``, or None if it is not a client's request."""
    if len(request) < PACKET_LEN or request[0] & 0x07 != CLIENT_MODE:
        return None
    leap, stratum, reference_id = (
        (0, STRATUM, b"LOCL")
        if synchronised
        else (UNSYNCHRONISED_LEAP, UNSYNCHRONISED_STRATUM, b"INIT")
    )
    now = ntp_timestamp(unix_secs)
    header = struct.pack(
        "!BBbbII4s",
        (leap << 6) | (VERSION << 3) | SERVER_MODE,
        stratum,
        request[2],  # the client's poll interval
        -20,  # precision: about a microsecond
        0,  # root delay
        0,  # root dispersion
        reference_id,
    )
    # Reference, originate (the request's transmit time), receive and transmit timestamps.
    return header + now + request[40:48] + now + now


class SntpServer:
    """Answers on ``HOST``, port :attr:`port`, from a thread; :attr:`answered` counts the
    requests answered unsynchronised and synchronised."""

    def __init__(self, offset_secs: float) -> None:
        self.offset_secs = offset_secs
        self.answered = {False: 0, True: 0}
        self._synchronised = False
        self._stop = threading.Event()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((HOST, 0))
        self._socket.settimeout(0.1)
        self.port: int = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="sntp", daemon=True)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def time(self) -> float:
        """The time it gives: the host's, moved by the offset."""
        return time.time() + self.offset_secs

    def synchronise(self) -> None:
        """From now on it answers with its time."""
        self._synchronised = True

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                request, client = self._socket.recvfrom(1024)
            except TimeoutError:
                continue
            synchronised = self._synchronised
            reply = server_reply(request, self.time(), synchronised)
            if reply is not None:
                self._socket.sendto(reply, client)
                self.answered[synchronised] += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@contextmanager
def sntp_server(offset_secs: float) -> Iterator[SntpServer]:
    """A started server, stopped afterwards."""
    server = SntpServer(offset_secs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
