"""Imported first by the trial processes' fork server, before its slow preload (Keras): the
server dies with the study process that started it.

On Linux that is PR_SET_PDEATHSIG, which follows the thread that forked the server: the study
process's main thread, which lives as long as the process (so here, unlike for the trial
processes, the signal is reliable). Elsewhere the server still exits when its last client does
(multiprocessing's own "alive" pipe), once its preload has finished.
"""

import ctypes
import os
import signal
import sys

from search.execution.lifeline import FORKSERVER_OWNER

PR_SET_PDEATHSIG = 1

if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.environ.get(FORKSERVER_OWNER, str(os.getppid())) != str(os.getppid()):  # the owner died before the line above
        os._exit(1)
