"""Sealed secrets: what is sealed opens with the same key and context only, and anything
else given to `open` is refused with `Unreadable`, never another error."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.sealing import VERSION, Sealer, Unreadable
from common.webhooks import SECRET_PREFIX, new_secret

SEALER = Sealer("a-signing-key-of-the-deployment-0123456789")
OTHER_KEY = Sealer("another-signing-key-0123456789abcdef")


@given(st.text(), st.text())
def test_a_sealed_value_opens_with_its_key_and_context(secret: str, context: str) -> None:
    sealed = SEALER.seal(secret, context)
    assert sealed.startswith(VERSION)
    assert SEALER.open(sealed, context) == secret
    with pytest.raises(Unreadable):
        OTHER_KEY.open(sealed, context)
    with pytest.raises(Unreadable):
        SEALER.open(sealed, context + "x")


def test_a_webhook_secret_is_not_readable_in_its_sealed_form() -> None:
    """Neither the secret nor its key bytes show, and a fresh nonce each time keeps
    equal secrets from looking equal in the database."""
    secret = new_secret()
    sealed = SEALER.seal(secret, "ep_1")
    assert secret not in sealed and secret.removeprefix(SECRET_PREFIX) not in sealed
    assert SEALER.seal(secret, "ep_1") != sealed


@given(st.text(), st.integers(min_value=0, max_value=200), st.characters())
def test_an_altered_value_does_not_open(secret: str, at: int, replacement: str) -> None:
    sealed = SEALER.seal(secret, "ep_1")
    i = len(VERSION) + at % (len(sealed) - len(VERSION))
    altered = sealed[:i] + replacement + sealed[i + 1 :]
    if altered == sealed:
        return
    with pytest.raises(Unreadable):
        SEALER.open(altered, "ep_1")


@given(st.text())
def test_anything_else_is_unreadable(value: str) -> None:
    with pytest.raises(Unreadable):
        SEALER.open(value, "ep_1")
