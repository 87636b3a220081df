"""A KerasTuner worker's line to its chief that waits out the chief being restarted or unreachable.

KerasTuner's `OracleClient` sends every call with `wait_for_ready=True` and a one-hour deadline:
a worker whose chief is gone waits silently for an hour, and gRPC's reconnection backoff grows to
two minutes, so a chief that is back may go unnoticed that long. Here its client is used as it is
(its calls, its messages), with the stub under it replaced: a channel that tries to reconnect
within seconds, and calls that fail fast when the chief cannot be reached, tried again by the
study's `Patience` (search/engines/patience.py): one line when the worker starts waiting, one when
the chief is back, StorageUnreachable when `--storage-patience` runs out.

What the chief does with a call it already had (the reply was lost with the connection):
`create_trial` hands a tuner its ongoing trial again, `update_trial` records the same value, and
`end_trial` of an ended trial is ignored (search/engines/kerastuner/oracles.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import grpc
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_client

from search.engines.patience import Patience
from search.errors import one_line

ATTEMPT_S = 60.0  # one call's deadline: a live chief answers in well under this (a Bayesian fit included)
# gRPC's reconnection backoff (its defaults: 1 s growing to 120 s), so that a chief that is back
# is found within seconds.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 3000),
]
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def transient(exc: BaseException) -> bool:
    """A call the chief could not take now: it is not listening (restarting, gone) or did not
    answer in time (paused, a network in trouble)."""
    return isinstance(exc, grpc.RpcError) and isinstance(exc, grpc.Call) and exc.code() in _TRANSIENT


def reason(exc: BaseException) -> str:
    """A gRPC error in one line: its status and details ("UNAVAILABLE: failed to connect...")."""
    if isinstance(exc, grpc.Call):
        details = (exc.details() or "").strip().splitlines()
        return f"{exc.code().name}: {details[0] if details else 'no details'}"
    return one_line(exc)


class _PatientStub:
    """The chief's gRPC stub, each call sent with a short deadline and tried again while the chief
    cannot be reached. The first call waits for the chief to be ready (as KerasTuner's does: a
    worker may start before its chief, keras-team/keras-tuner#990); later ones fail fast."""

    def __init__(self, stub: Any, patience: Patience):
        self._stub = stub
        self._patience = patience
        self._reached = False

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)

        def once(request: Any, **kwargs: Any) -> Any:
            wait, self._reached = not self._reached, True
            return method(request, **{**kwargs, "wait_for_ready": wait, "timeout": ATTEMPT_S})

        return lambda request, **kwargs: self._patience.call(once, request, **kwargs)


def chief_address() -> str:
    return f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"


def chief_patience(window_s: float, note: Callable[[str], None] | None = None) -> Patience:
    return Patience(f"KerasTuner chief at {chief_address()}", transient, window_s, note, describe=reason)


def patient_client(oracle: Any, patience: Patience) -> oracle_client.OracleClient:
    """KerasTuner's client of the chief (its environment variables say where), made patient."""
    client = oracle_client.OracleClient(oracle)
    channel = grpc.insecure_channel(chief_address(), options=CHANNEL_OPTIONS)
    client.stub = _PatientStub(protos.get_service_grpc().OracleStub(channel), patience)
    return client
