"""The one pyzmq boundary: context, server sockets, CURVE security, error translation.

Security fails closed. With CURVE configured, every server socket sets
``ZAP_ENFORCE_DOMAIN`` so a handshake without a ZAP answer is refused
(without it libzmq accepts any key when no authenticator runs). Nothing is
bound before the authenticator has answered a self-test handshake, and a
watchdog reports its death so the runtime can enter SAFE; from then on no new
connection is accepted at all. Every message is also checked against the
allow-list by its ``User-Id``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from flightai.config.schema import CommandClass, CurveConfig
from flightai.errors import BusError

ZAP_DOMAIN = "flightai"
#: Frames at least this long are sent and received zero-copy; shorter ones are copied
#: (pyzmq's own send threshold: a ``zmq.Frame`` costs more than copying a short buffer).
COPY_THRESHOLD = 64 * 1024
#: ``zmq.SNDMORE`` and ``zmq.NOBLOCK`` as plain ints (cheaper to combine than IntFlags).
SNDMORE, NOBLOCK = int(zmq.SNDMORE), int(zmq.NOBLOCK)


@contextmanager
def zmq_errors(action: str) -> Iterator[None]:
    """Translate pyzmq errors raised inside into :class:`BusError` naming the action."""
    try:
        yield
    except zmq.ZMQError as exc:
        raise BusError(f"cannot {action}: {exc}") from exc


def load_certificate(path: Path) -> tuple[bytes, bytes | None]:
    """Read the Z85 (public, secret) keys of a ZeroMQ certificate file; secret may be None."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise BusError(f"cannot read CURVE key file {path}: {exc}") from exc
    return public, secret


def load_secret_key(path: Path) -> tuple[bytes, bytes]:
    """Read the (public, secret) Z85 keys of a certificate file that has its secret part."""
    public, secret = load_certificate(path)
    if secret is None:
        raise BusError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


class _AllowList:
    """Answers the authenticator whether a Z85 client key is allowed."""

    def __init__(self, keys: set[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


class Security:
    """CURVE server keys, the allow-list, the authenticator and its watchdog.

    Args:
        context: the bus's ZeroMQ context (the authenticator serves all its sockets).
        curve: the ``[bus.curve]`` config.
        on_death: called once, from the watchdog thread, if the authenticator dies.
    """

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], curve: CurveConfig,
                 on_death: Callable[[], None]) -> None:
        self.public_key, self._secret_key = load_secret_key(curve.server_secret_key_file)
        self.classes: dict[str, frozenset[CommandClass]] = {
            c.public_key: frozenset(c.commands) for c in curve.clients}
        self._context = context
        self._on_death = on_death
        self._selftest_public, self._selftest_secret = zmq.curve_keypair()
        self._allow = _AllowList({k.encode() for k in self.classes} | {self._selftest_public})
        self._auth = ThreadAuthenticator(context)
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.dead = False

    def start(self) -> None:
        """Start the authenticator and prove it answers before anything is bound.

        Raises:
            BusError: the authenticator did not accept the self-test key or did
                not refuse an unknown one within two seconds.
        """
        with zmq_errors("start the CURVE authenticator"):
            self._auth.start()
            self._auth.configure_curve_callback(domain=ZAP_DOMAIN, credentials_provider=self._allow)
            self._self_test()
        self._allow.keys.discard(self._selftest_public)
        self._watchdog = threading.Thread(target=self._watch, name="flightai-zap-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def _self_test(self) -> None:
        # Over loopback TCP: inproc connections skip the security handshake entirely.
        server = self._context.socket(zmq.PULL)
        self.configure_server(server)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        endpoint = f"tcp://127.0.0.1:{port}"
        try:
            accepted = self._try_key(server, endpoint, self._selftest_public,
                                     self._selftest_secret)
            stranger = zmq.curve_keypair()
            refused = not self._try_key(server, endpoint, *stranger)
        finally:
            server.close(linger=0)
        if not (accepted and refused):
            raise BusError("the CURVE authenticator did not answer its self-test "
                           f"(allowed key accepted: {accepted}, unknown key refused: {refused})")

    def _try_key(self, server: zmq.Socket[bytes], endpoint: str, public: bytes,
                 secret: bytes) -> bool:
        client = self._context.socket(zmq.PUSH)
        client.linger = 0
        client.curve_serverkey = self.public_key
        client.curve_publickey = public
        client.curve_secretkey = secret
        client.connect(endpoint)
        with contextlib.suppress(zmq.Again):
            client.send(b"selftest", zmq.NOBLOCK)
        try:
            return bool(server.poll(1000)) and server.recv() == b"selftest"
        finally:
            client.close(linger=0)

    def _watch(self) -> None:
        thread = self._auth.thread
        while not self._stop.wait(0.05):
            if thread is None or not thread.is_alive():
                self.dead = True
                self._on_death()
                return

    def configure_server(self, socket: zmq.Socket[bytes]) -> None:
        """Make ``socket`` a CURVE server whose handshakes need the authenticator's yes."""
        socket.curve_server = True
        socket.curve_publickey = self.public_key
        socket.curve_secretkey = self._secret_key
        socket.zap_domain = ZAP_DOMAIN.encode()
        socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)

    def allowed(self, user_id: str | None) -> bool:
        """Whether a message's ``User-Id`` (the client's Z85 key) is on the allow-list.

        Peers authenticated before an authenticator death keep working (the
        runtime flies on, in SAFE); libzmq refuses every new handshake then.
        """
        return user_id is not None and user_id in self.classes

    def stop(self) -> None:
        """Stop the watchdog, then the authenticator."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(1)
        self._auth.stop()


def send_frames(socket: Any, frames: Sequence[Any], flags: int = 0) -> None:
    """Send one message frame by frame (what ``send_multipart`` does, without its overhead).

    Arrays (frames from the third on) of :data:`COPY_THRESHOLD` bytes or more go
    zero-copy: libzmq may still read such an array after this returns, so it must
    not be changed. Shorter ones are copied, which costs less than a ``zmq.Frame``.
    """
    send = socket.send
    flags = int(flags)  # pyzmq's flags are IntFlags: or-ing them runs Python code
    more = flags | SNDMORE
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        copy = i < 2 or memoryview(frame).nbytes < COPY_THRESHOLD
        send(frame, flags if i == last else more, copy=copy)


def server_socket(context: zmq.Context[zmq.Socket[bytes]], kind: int, endpoint: str,
                  hwm: int, security: Security | None) -> zmq.Socket[bytes]:
    """Create, secure and bind one server socket (linger 0: a stop never blocks)."""
    with zmq_errors(f"bind {endpoint}"):
        socket = context.socket(kind)
        socket.linger = 0
        socket.sndhwm = hwm
        socket.rcvhwm = hwm
        if security is not None:
            security.configure_server(socket)
        socket.bind(endpoint)
    return socket
