from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.egress.receivers import Listener, Receiver


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rcv = Receiver()
    yield rcv
    rcv.close()
