"""Is the process that owns a trial still alive? A pid alone can lie: after a restart (a
container's pid 1, a rebooted machine) the same number belongs to another process. So an owner
is recorded as (host, pid, start time), and a zombie (killed, not yet reaped) counts as dead."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, with the boot's id (Linux); None
    where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return f"{boot}:{fields[19]}"  # field 22 of the whole line


def owner() -> dict[str, Any]:
    """This process, as recorded on the trials it runs."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": start_time(os.getpid())}


def alive(pid: Any, recorded_start: str | None = None) -> bool:
    """Whether process `pid` of this machine still runs (and is the same process as recorded)."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # no /proc (not Linux): trust the signal check
    if "\nState:\tZ" in status:
        return False
    return recorded_start is None or start_time(pid) == recorded_start
