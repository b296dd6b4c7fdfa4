"""Parsing client ops (property-based): `batch_id` picks the batch form of `subscribe` and
`unsubscribe`, `job_id` the job form, and anything else is a BadRequest, never a crash."""

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from notifier.protocol import (
    BadRequest,
    Subscribe,
    SubscribeBatch,
    Unsubscribe,
    UnsubscribeBatch,
    parse_op,
)

ids = st.text(min_size=1, max_size=64)
seqs = st.none() | st.integers(min_value=0, max_value=2**53)


@given(batch_id=ids, token=st.text(min_size=1, max_size=100), after_seq=seqs)
def test_a_subscribe_with_batch_id_is_a_batch_subscription(
    batch_id: str, token: str, after_seq: int | None
) -> None:
    op: dict[str, Any] = {"op": "subscribe", "batch_id": batch_id, "token": token}
    if after_seq is not None:
        op["after_seq"] = after_seq
    parsed = parse_op(json.dumps(op))
    assert parsed == SubscribeBatch(**op)


@given(job_id=ids, token=st.text(min_size=1, max_size=100))
def test_a_subscribe_with_job_id_stays_a_job_subscription(job_id: str, token: str) -> None:
    parsed = parse_op(json.dumps({"op": "subscribe", "job_id": job_id, "token": token}))
    assert isinstance(parsed, Subscribe) and parsed.job_id == job_id


@given(some_id=ids)
def test_unsubscribe_takes_either(some_id: str) -> None:
    assert parse_op(json.dumps({"op": "unsubscribe", "batch_id": some_id})) == UnsubscribeBatch(
        op="unsubscribe", batch_id=some_id
    )
    assert parse_op(json.dumps({"op": "unsubscribe", "job_id": some_id})) == Unsubscribe(
        op="unsubscribe", job_id=some_id
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    message=st.dictionaries(
        st.sampled_from(["op", "job_id", "batch_id", "token", "after_seq", "x"]),
        json_values | st.sampled_from(["subscribe", "unsubscribe", "ping"]),
    )
)
def test_anything_else_is_a_bad_request_or_a_valid_op(message: dict[str, Any]) -> None:
    try:
        parse_op(json.dumps(message))
    except BadRequest as e:
        assert str(e)  # a reason the client can read
