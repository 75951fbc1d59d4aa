"""Which function runs each kind of job."""

from __future__ import annotations

from functools import partial

from workflows import provisioning, reveal
from workflows.jobs import Handler
from workflows.runtime import Runtime


def job_handlers(runtime: Runtime) -> dict[str, Handler]:
    kinds = {
        "announce": provisioning.announce,
        "refresh": provisioning.refresh,
        "thread_note": provisioning.note_in_thread,
        "provision": provisioning.provision,
        "notify_ready": provisioning.notify_ready,
        "reveal": reveal.reveal,
    }
    return {kind: partial(run, runtime) for kind, run in kinds.items()}
