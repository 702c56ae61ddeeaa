"""SIGTERM and SIGINT received by a process recording a run (`start_run`) become events
on the run, and the signal still does what it did before.

A handler is installed only from the main thread (Python runs signal handlers there, and
`signal.signal` refuses other threads), only for a signal that is not ignored, and it
chains to the handler it replaced:

- the previous handler was the default one (SIGTERM ends the process): the event is
  recorded, the run ended as failed (SIGTERM) or killed (SIGINT) with what it buffered,
  and the signal is raised again with the default action, so the process dies of it as
  it would have (exit status -15);
- the previous handler is a function (Python's own SIGINT handler raising
  KeyboardInterrupt, a framework's checkpoint-on-SIGTERM, or an outer run's handler):
  the event is recorded and that function is called; what it does (raise, exit, carry
  on) decides the run's end, as it decides the process's.

The event is a note of kind `event` ("received SIGTERM") and the run's tag `event`
(`sigterm`, `sigint`), so `runs where event = "sigterm"` finds it.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

#: The signals a run records, and the status a default-action death leaves it in.
SIGNALS = {signal.SIGTERM: "failed", signal.SIGINT: "killed"}


def install(run) -> Callable[[], None]:
    """Record SIGTERM/SIGINT on `run` (an ActiveRun); returns the function that puts the
    previous handlers back (a no-op where none were installed)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    installed: dict[int, tuple[Callable, object]] = {}
    for signum, status in SIGNALS.items():
        previous = signal.getsignal(signum)
        if previous in (signal.SIG_IGN, None):  # ignored (or set outside Python): leave it
            continue
        handler = _handler(run, signum, status, previous)
        try:
            signal.signal(signum, handler)
        except (ValueError, OSError):  # not allowed here (an embedded interpreter …)
            continue
        installed[signum] = (handler, previous)

    def uninstall() -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, (handler, previous) in installed.items():
            # put the previous one back only if ours is still the one installed: a
            # handler installed after ours chains to it and must stay
            if signal.getsignal(signum) is handler:
                signal.signal(signum, previous)

    return uninstall


def _handler(run, signum: int, status: str, previous):
    name = signal.Signals(signum).name
    # an outer run's handler before ours: the process dies if the chain ends in the default
    fatal = getattr(previous, "ends_in_default", not callable(previous))

    def on_signal(received, frame):
        if not run.ended:
            try:
                run.event(name.lower(), f"received {name}")
                if fatal:  # the process is about to die: keep what the run buffered
                    run.end(status)
            except Exception:  # noqa: BLE001,S110 - the signal's effect matters more than its record
                pass
        if callable(previous):
            return previous(received, frame)
        signal.signal(signum, signal.SIG_DFL)  # die of the signal, as before
        os.kill(os.getpid(), signum)

    on_signal.ends_in_default = fatal
    return on_signal
