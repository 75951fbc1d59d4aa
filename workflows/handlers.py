"""Which function runs each kind of job."""

from __future__ import annotations

from functools import partial

from workflows import idle, inbound, lifecycle, messages, owners, pending, provisioning, reveal
from workflows.jobs import GiveUp, Handler
from workflows.runtime import Runtime


def job_handlers(runtime: Runtime) -> dict[str, Handler]:
    kinds = {
        "announce": messages.announce,
        "refresh": messages.refresh,
        "thread_note": messages.note_in_thread,
        "tell_requester": messages.tell_requester,
        "tell_approvers": messages.tell_approvers,
        "notify_ready": messages.notify_ready,
        "break_glass_alert": messages.break_glass_alert,
        "provision": provisioning.provision,
        "reveal": reveal.reveal,
        "manual_token": reveal.manual_token,
        "remind": pending.remind,
        "escalate": pending.escalate,
        "expire": pending.expire,
        "revoke_token": lifecycle.revoke_token,
        "revoke_all": lifecycle.revoke_all,
        "delete_account": lifecycle.delete_account,
        "offer_token": lifecycle.offer_token,
        "expiry_warning": lifecycle.expiry_warning,
        "token_expired": lifecycle.token_expired,
        "check_owners": owners.check_owners,
        "owner_left": owners.owner_left,
        "orphan_alert": owners.orphan_alert,
        "forget_old_events": inbound.forget_old_events,
        "reconcile_report": owners.reconcile_report,
        "idle_credentials": idle.check_idle,
        "ask_idle_token": idle.ask_idle_token,
        "propose_deletion": idle.propose_deletion,
    }
    return {kind: partial(run, runtime) for kind, run in kinds.items()}


def give_up_handlers(runtime: Runtime) -> dict[str, GiveUp]:
    """What to leave behind when a job fails for good, so no request is stuck half-way."""
    return {
        "provision": partial(provisioning.give_up, runtime),
        "reveal": partial(reveal.give_up, runtime),
    }
