"""A real SMTP server for tests: aiosmtpd on loopback, keeping every mail it receives.

It can be stopped and started again on the same port, so a test can take the relay away and bring
it back as in an outage."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from typing import Callable

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    sender: str              # the envelope's MAIL FROM
    recipients: list[str]    # the envelope's RCPT TOs
    raw: bytes               # the mail as it came, CRLF line ends
    message: EmailMessage


def _free_port() -> int:
    # Not every Controller takes port 0: its start() connects to the port it was given.
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class SmtpSink:
    def __init__(self):
        self.port = _free_port()
        self.url = f"smtp://{HOST}:{self.port}"
        self.received: list[Received] = []
        self._arrived = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> None:
        """Returns once the server answers. A stopped Controller's event loop is closed, so every
        start makes a new one; server_hostname spares a reverse DNS lookup of the host."""
        self._controller = Controller(self, hostname=HOST, port=self.port, server_hostname="sink.test")
        self._controller.start()

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()
            self._controller = None

    async def handle_DATA(self, server, session, envelope) -> str:
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                            BytesParser(policy=default).parsebytes(envelope.content))
        with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10,
                 hopeless: Callable[[], str | None] = lambda: None) -> list[Received]:
        """The mail received once there are at least `count`. AssertionError after `timeout`, or
        within a second of `hopeless` saying why no more mail can come (the sender has died)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                why = "timed out" if left <= 0 else hopeless()
                if why:
                    raise AssertionError(f"{len(self.received)} of {count} mails arrived: {why}")
                self._arrived.wait(min(left, 1.0))
            return list(self.received)

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop()
