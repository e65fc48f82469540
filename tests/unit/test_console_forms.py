"""The console's form checks: bad input is refused with a message naming the field, before any request."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from strom.console import FormError, forms
from strom.console.history import Series, chart_points


@pytest.mark.parametrize("name", ["", "no/slashes", "spaces here", ".", "..", "x" * 250, "ümlaut"])
def test_topic_names_kafka_refuses_are_refused(name: str) -> None:
    with pytest.raises(FormError):
        forms.topic_name(name)


def test_valid_topic_names_pass_trimmed() -> None:
    assert forms.topic_name("  orders.v2_eu-1 ") == "orders.v2_eu-1"
    assert forms.topic_name("x" * 249) == "x" * 249


def refusal(check: Callable[[], object]) -> str:
    with pytest.raises(FormError) as caught:
        check()
    return str(caught.value)


def test_numbers_name_the_field_and_the_bound() -> None:
    assert refusal(lambda: forms.whole_number({"offset": "-1"}, "offset", minimum=0)) == (
        "offset must be at least 0, got -1"
    )
    assert refusal(lambda: forms.whole_number({"partition": "3"}, "partition", minimum=0, maximum=2)) == (
        "partition must be at most 2, got 3"
    )
    assert refusal(lambda: forms.whole_number({"partitions": "three"}, "partitions", minimum=1)) == (
        "partitions must be a whole number, got 'three'"
    )
    assert forms.optional_number({"offset": " "}, "offset", minimum=0) is None
    assert forms.optional_number({"offset": "+7"}, "offset", minimum=0) == 7


def test_times_are_iso_utc_or_epoch_milliseconds() -> None:
    assert forms.moment_ms({"time": "1970-01-01T00:00:01Z"}, "time") == 1000
    assert forms.moment_ms({"time": "1970-01-01T00:00:01"}, "time") == 1000  # UTC unless said otherwise
    assert forms.moment_ms({"time": "1970-01-01T01:00:01+01:00"}, "time") == 1000
    assert forms.moment_ms({"time": "1234"}, "time") == 1234
    assert forms.moment_ms({}, "time") is None
    with pytest.raises(FormError, match="time must be a time such as"):
        forms.moment_ms({"time": "yesterday"}, "time")


def test_config_and_header_lines() -> None:
    assert forms.config_lines("retention.ms=1000\n\n cleanup.policy = compact ") == {
        "retention.ms": "1000",
        "cleanup.policy": "compact",
    }
    assert refusal(lambda: forms.config_lines("a=1\nretention.ms")) == (
        "config line 2 must be key=value, got 'retention.ms'"
    )
    assert forms.header_lines("trace: 1\ntrace: 2") == [("trace", "1"), ("trace", "2")]
    with pytest.raises(FormError, match="header line 1"):
        forms.header_lines("no separator")


def test_series_rate_and_chart() -> None:
    now = [0.0]
    series = Series(clock=lambda: now[0], size=3)
    series.add("g", 10)
    assert series.rate("g") is None
    now[0] = 2.0
    series.add("g", 30)
    assert series.rate("g") == 10.0
    for t in (3.0, 4.0):
        now[0] = t
        series.add("g", 0)
    assert [t for t, _ in series.samples("g")] == [2.0, 3.0, 4.0]  # bounded
    assert chart_points(series.samples("g"), width=100, height=10) == "0.0,0.0 50.0,10.0 100.0,10.0"
