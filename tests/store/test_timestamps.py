"""The one textual form of stored instants, from a datetime or from epoch microseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from frostgate.store.entries import epoch_micros, format_epoch_micros, format_timestamp

# Every instant a datetime can hold, in any fixed offset, or naive (read as UTC).
instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none()
) | st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.builds(
        timezone, st.integers(-23 * 60, 23 * 60).map(lambda m: timedelta(minutes=m))
    ),
)


def strftime_form(moment: datetime) -> str:
    """The definition: the instant in UTC, ``strftime`` with microseconds and ``Z``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(instants)
def test_format_timestamp_is_the_strftime_form(moment: datetime) -> None:
    assert format_timestamp(moment) == strftime_form(moment)


@given(instants)
def test_epoch_micros_round_trips_through_the_text(moment: datetime) -> None:
    micros = epoch_micros(moment)
    assert format_epoch_micros(micros) == strftime_form(moment)
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros) == aware


def test_known_instants() -> None:
    assert format_epoch_micros(0) == "1970-01-01T00:00:00.000000Z"
    assert format_epoch_micros(-1) == "1969-12-31T23:59:59.999999Z"
    moment = datetime(2026, 11, 25, 16, 51, 30, 123456, tzinfo=UTC)
    assert format_timestamp(moment) == "2026-11-25T16:51:30.123456Z"
