"""Encryption of secrets at rest with MultiFernet: the first key encrypts, every key decrypts."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the configured keys."""


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def __repr__(self) -> str:
        return "SecretBox(<keys hidden>)"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str, *, what: str) -> str:
        """Decrypt, naming `what` (e.g. "the key of integration prod") if no key fits."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            raise SecretUnreadable(
                f"cannot decrypt {what}: none of ROLEUP_ENCRYPTION_KEYS fits "
                "(was a key removed before `roleup rotate-keys`?)"
            ) from None

    def rotate(self, token: str, *, what: str) -> str:
        """Re-encrypt with the first key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except (InvalidToken, ValueError):
            raise SecretUnreadable(
                f"cannot re-encrypt {what}: none of ROLEUP_ENCRYPTION_KEYS fits"
            ) from None


def generate_key() -> str:
    return Fernet.generate_key().decode()
