"""The request state machine: every listed transition works, every other one is refused."""

from __future__ import annotations

import itertools

import pytest

from workflows.states import (
    ENDED,
    TRANSITIONS,
    Event,
    IllegalTransition,
    RequestStatus,
    next_status,
    sources_of,
)


@pytest.mark.parametrize(("source", "event"), list(TRANSITIONS))
def test_listed_transitions_apply(source: RequestStatus, event: Event) -> None:
    assert next_status(source, event) == TRANSITIONS[(source, event)]


ILLEGAL = [pair for pair in itertools.product(RequestStatus, Event) if pair not in TRANSITIONS]


@pytest.mark.parametrize(("source", "event"), ILLEGAL)
def test_every_other_transition_is_refused(source: RequestStatus, event: Event) -> None:
    with pytest.raises(IllegalTransition):
        next_status(source, event)


def test_each_event_has_one_destination() -> None:
    # The database applies an event as one UPDATE ... WHERE status IN (sources): that is only
    # right if every source leads to the same place.
    for event in Event:
        destinations = {TRANSITIONS[(source, event)] for source in sources_of(event)}
        assert len(destinations) == 1, event


def test_the_main_path_and_its_exits() -> None:
    status = RequestStatus.SUBMITTED
    for event in (Event.ANNOUNCE, Event.APPROVE, Event.START_PROVISIONING, Event.PROVISIONED):
        status = next_status(status, event)
    assert status == RequestStatus.ACTIVE
    assert next_status(RequestStatus.PENDING, Event.DENY) == RequestStatus.DENIED
    assert next_status(RequestStatus.PROVISIONING, Event.FAIL) == RequestStatus.FAILED


def test_ended_states_free_the_name_and_cannot_be_approved() -> None:
    assert RequestStatus.ACTIVE not in ENDED
    for status in ENDED:
        with pytest.raises(IllegalTransition):
            next_status(status, Event.APPROVE)
