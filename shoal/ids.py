"""Object identifiers: 25 characters of base36, as SwarmKit's identity.NewID()."""

import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_id() -> str:
    n = secrets.randbits(128)
    out = []
    for _ in range(25):
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(out)


def new_secret() -> str:
    return secrets.token_hex(16)
