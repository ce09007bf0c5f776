"""Where the key peppers come from: ``FG_KEY_PEPPERS``, or in dev/test a generated file."""

from __future__ import annotations

import os

from frostgate.config import Profile, Settings
from frostgate.security.keys import Peppers

__all__ = ["load_peppers"]


def load_peppers(settings: Settings) -> Peppers:
    """The configured peppers. ``prod`` must configure them; dev/test generate one into
    ``<data_dir>/peppers`` (mode 0600) on first use and reuse it afterwards."""
    if settings.key_peppers:
        return Peppers.parse(settings.key_peppers)
    if settings.profile is Profile.PROD:
        raise RuntimeError("FG_KEY_PEPPERS is required in the prod profile")
    path = settings.data_dir / "peppers"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return Peppers.parse(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(Peppers.generate_spec() + "\n")
    return Peppers.parse(path.read_text().strip())
