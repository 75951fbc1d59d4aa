"""Which function runs each kind of job."""

from __future__ import annotations

from functools import partial

from workflows.account import idle, lifecycle, owners, provisioning, reveal
from workflows.discovery import replacement
from workflows.jobs import inbound
from workflows.jobs.queue import GiveUp, Handler
from workflows.request import messages, pending
from workflows.runtime import Runtime
from workflows.states import JobKind


def job_handlers(runtime: Runtime) -> dict[JobKind, Handler]:
    """One handler for every kind of job (the worker refuses to start otherwise)."""
    kinds = {
        JobKind.ANNOUNCE: messages.announce,
        JobKind.REFRESH: messages.refresh,
        JobKind.THREAD_NOTE: messages.note_in_thread,
        JobKind.TELL_REQUESTER: messages.tell_requester,
        JobKind.TELL_APPROVERS: messages.tell_approvers,
        JobKind.NOTIFY_READY: messages.notify_ready,
        JobKind.BREAK_GLASS_ALERT: messages.break_glass_alert,
        JobKind.PROVISION: provisioning.provision,
        JobKind.REVEAL: reveal.reveal,
        JobKind.MANUAL_TOKEN: reveal.manual_token,
        JobKind.REMIND: pending.remind,
        JobKind.ESCALATE: pending.escalate,
        JobKind.EXPIRE: pending.expire,
        JobKind.REVOKE_TOKEN: lifecycle.revoke_token,
        JobKind.REVOKE_ALL: lifecycle.revoke_all,
        JobKind.DELETE_ACCOUNT: lifecycle.delete_account,
        JobKind.OFFER_TOKEN: lifecycle.offer_token,
        JobKind.EXPIRY_WARNING: lifecycle.expiry_warning,
        JobKind.TOKEN_EXPIRED: lifecycle.token_expired,
        JobKind.CHECK_OWNERS: owners.check_owners,
        JobKind.OWNER_LEFT: owners.owner_left,
        JobKind.ORPHAN_ALERT: owners.orphan_alert,
        JobKind.FORGET_OLD_EVENTS: inbound.forget_old_events,
        JobKind.RECONCILE_REPORT: owners.reconcile_report,
        JobKind.IDLE_CREDENTIALS: idle.check_idle,
        JobKind.ASK_IDLE_TOKEN: idle.ask_idle_token,
        JobKind.PROPOSE_DELETION: idle.propose_deletion,
        JobKind.OFFER_REPLACEMENT: replacement.tell_offer,
        JobKind.CONFIRM_REPLACEMENT: replacement.ask_confirmation,
        JobKind.REVOKE_HUMAN_TOKEN: replacement.revoke_old_token,
    }
    return {kind: partial(run, runtime) for kind, run in kinds.items()}


def give_up_handlers(runtime: Runtime) -> dict[JobKind, GiveUp]:
    """What to leave behind when a job fails for good, so no request is stuck half-way."""
    return {
        JobKind.PROVISION: partial(provisioning.give_up, runtime),
        JobKind.REVEAL: partial(reveal.give_up, runtime),
        JobKind.REVOKE_HUMAN_TOKEN: partial(replacement.give_up_revoke, runtime),
    }
