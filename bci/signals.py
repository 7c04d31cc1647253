"""How a ``bci`` process takes its stop signals (Ctrl-C or a parent's SIGINT, and SIGTERM).

A child process inherits its parent's blocked-signal mask and its ignored signals across
``exec``: Ray's worker processes block SIGINT, and a non-interactive shell starts background jobs
with SIGINT ignored. A recorder or a plant started from there never sees the SIGINT that asks it
to close its file and stop, so whoever started it waits for its timeout and then kills it (a
recorder killed that way leaves a file without footers). Every ``bci`` process therefore calls
:func:`accept_stop_signals` before it starts work.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["STOP_SIGNALS", "accept_stop_signals"]

#: The signals that ask a ``bci`` process to stop cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def accept_stop_signals() -> None:
    """Unblock SIGINT and SIGTERM in this thread and undo an inherited "ignore".

    SIGINT gets Python's default handler (``KeyboardInterrupt``) and SIGTERM the default action
    if the parent had them ignored (in the main thread; elsewhere only the mask is changed);
    handlers the process installs later are unaffected. Call it first thing in a process's
    main thread, before starting threads (they inherit the mask).
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    if threading.current_thread() is not threading.main_thread():
        return  # handlers can be set from the main thread only
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
