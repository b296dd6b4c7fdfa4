"""Secrets we must read back, sealed at rest: a webhook endpoint's signing secrets are
stored encrypted (AES-256-GCM) under a key derived from SIGNING_KEY (HKDF-SHA256 with an
`info` of their own), so a copy of the database alone cannot sign deliveries as us.

A sealed value is `v1.` + base64url(nonce ‖ ciphertext ‖ tag). The `context` (the
endpoint's id) is bound in as associated data: a sealed secret copied onto another
endpoint does not open there.
"""

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "v1."
_NONCE_BYTES = 12


class Unreadable(Exception):
    """A sealed value that does not open: sealed under another SIGNING_KEY, for another
    context, or altered."""


class Sealer:
    def __init__(self, signing_key: str, purpose: str = "webhook secrets") -> None:
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=f"product-videos {purpose}".encode(),
        ).derive(signing_key.encode())
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(VERSION):
            raise Unreadable("not a sealed value of a known version")
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(VERSION))
            nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return self._aead.decrypt(nonce, body, context.encode()).decode()
        except (InvalidTag, ValueError) as e:
            raise Unreadable("the sealed value does not open with this key") from e
