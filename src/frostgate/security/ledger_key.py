"""The ledger's checkpoint signing key: ``FG_LEDGER_SIGNING_KEY``, or in dev/test a key
generated into ``<data_dir>/ledger-key`` (mode 0600) on first use. ``prod`` requires it."""

from __future__ import annotations

import os

from frostgate.config import Profile, Settings
from frostgate.ledger.note import Signer, generate_signing_key

__all__ = ["load_ledger_signer"]


def load_ledger_signer(settings: Settings) -> Signer:
    if settings.ledger_signing_key:
        return Signer.from_skey(settings.ledger_signing_key)
    if settings.profile is Profile.PROD:
        raise RuntimeError("FG_LEDGER_SIGNING_KEY is required in the prod profile")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "ledger-key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Signer.from_skey(path.read_text().strip())
    skey, _vkey = generate_signing_key(settings.ledger_origin)
    with os.fdopen(fd, "w") as handle:
        handle.write(skey + "\n")
    return Signer.from_skey(skey)
