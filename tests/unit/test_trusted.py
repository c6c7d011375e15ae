"""The engine builds outputs and states without re-validating them (``trusted``,
``evolve``): every one must be exactly what validation would have built."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel

from triage.events.base import evolve, trusted
from triage.events.outputs import Contribution, Decision
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.pipeline.state import Assignment, VictimState
from triage.replay.offline import to_raw
from triage.testing import BASE_TIME, VICTIM_REF
from triage.topics import Topics


def _revalidated(model: BaseModel) -> BaseModel:
    """``model`` built again through validation from the fields it was given."""
    given = {name: getattr(model, name) for name in model.model_fields_set}
    return type(model).model_validate(given)


def _assert_same(model: BaseModel) -> None:
    again = _revalidated(model)
    assert again == model
    assert list(again.__dict__) == list(model.__dict__)
    assert again.model_fields_set == model.model_fields_set
    assert again.model_dump_json() == model.model_dump_json()
    for value in model.__dict__.values():
        for part in value if isinstance(value, tuple) else (value,):
            if isinstance(part, BaseModel):
                _assert_same(part)


@pytest.fixture(scope="module")
def replayed() -> tuple[list[BaseModel], list[VictimState]]:
    engine = Engine()
    config = GeneratorConfig(victims=150, days=120, start=date(2026, 1, 1), seed=3, bad_rate=0.05)
    topics = Topics()
    processor = Processor(engine, topics)
    outputs: list[BaseModel] = []
    for record in generate_log(config, engine):
        outputs.extend(processor.feed(to_raw(record, topics)).outputs)
    return outputs, list(processor.states.values())


def test_outputs_are_what_validation_builds(
    replayed: tuple[list[BaseModel], list[VictimState]],
) -> None:
    """Every kind of output, with nested parts, equals its validated twin, field for field."""
    outputs, _ = replayed
    kinds = {type(o).__name__ for o in outputs}
    assert {"Decision", "QueueRecord", "Escalation", "DeadLetter"} <= kinds
    for output in outputs:
        _assert_same(output)


def test_states_are_what_validation_builds(
    replayed: tuple[list[BaseModel], list[VictimState]],
) -> None:
    """Victim states equal their validated twins and survive the JSON round trip."""
    _, states = replayed
    assert any(s.assignments for s in states)
    for state in states:
        _assert_same(state)
        assert VictimState.model_validate_json(state.model_dump_json()) == state


def test_trusted_fills_defaults_in_field_order() -> None:
    """Defaults are filled, declaration order kept, only given fields count as set."""
    built = trusted(VictimState, victim_ref=VICTIM_REF)
    validated = VictimState(victim_ref=VICTIM_REF)
    assert built == validated
    assert list(built.__dict__) == list(validated.__dict__)
    assert built.model_fields_set == validated.model_fields_set == {"victim_ref"}


@pytest.mark.parametrize(
    "values",
    [
        {"factor": "x", "answer": "yes", "points": 1},  # source missing
        {"factor": "x", "answer": "yes", "points": 1, "source": "report", "bogus": 1},
    ],
)
def test_trusted_refuses_missing_or_unknown_fields(values: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        trusted(Contribution, **values)


def test_evolve_is_model_copy() -> None:
    """What ``model_copy(update=...)`` gives (fields, fields set, order); unknown names refused."""
    item = Assignment(
        decision_id="D-" + "0" * 24,
        queue="standard",
        level="P3",
        kind="new",
        routed_at=BASE_TIME,
        ack_due=BASE_TIME,
        action_due=BASE_TIME,
    )
    state = VictimState(victim_ref=VICTIM_REF, assignments=(item,))
    changes: dict[str, Any] = {"open": True, "unit": "U-1", "assignments": ()}
    evolved, copied = evolve(state, **changes), state.model_copy(update=changes)
    assert evolved == copied
    assert list(evolved.__dict__) == list(copied.__dict__)
    assert evolved.model_fields_set == copied.model_fields_set
    assert evolve(item, ack_escalated=True) == item.model_copy(update={"ack_escalated": True})
    with pytest.raises(TypeError):
        evolve(state, bogus=1)
    with pytest.raises(TypeError):
        trusted(Decision, id="D-" + "0" * 24)
