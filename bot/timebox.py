"""Reading untrusted mail with a deadline, in a child process killed when it runs out.

Parsers bootbot relies on take quadratic time on crafted input: b4's diffstat expression on a long
run of blank lines (8,000 lines: 0.4 s; a 500 KB mail: hours), its subject parser on a run of
"[" (20,000: 5 s). A regular expression cannot be interrupted from another thread, so each read
runs in a forked process of its own, which inherits the parsers and their settings (b4's globals).
It runs only parsing: were it to block on a lock another thread held at the fork, the deadline
still ends it."""
from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_CONTEXT = multiprocessing.get_context("fork")


class Overrun(Exception):
    """The read did not finish in time (or its process died): the input is treated as hostile."""


def call(function: Callable[..., T], *args, seconds: float) -> T:
    """function(*args) in a child process, its result or exception; Overrun after `seconds`."""
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_run, args=(sender, function, args), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(seconds):
            raise Overrun(f"reading took over {seconds:g} s")
        succeeded, value = receiver.recv()
    except EOFError:
        raise Overrun(f"the reading process died (exit {child.exitcode})") from None
    finally:
        child.kill()
        child.join()
        receiver.close()
    if not succeeded:
        raise value
    return value


def _run(sender, function, args) -> None:
    try:
        outcome = (True, function(*args))
    except Exception as e:   # handed to the parent, which raises it as if called there
        outcome = (False, e)
    sender.send(outcome)
