"""Free loopback ports, for a runtime started by a bench, a test or the demo."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free on 127.0.0.1 right now (bound together, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
