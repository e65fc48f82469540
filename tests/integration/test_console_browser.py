"""`strom console` in a real headless Chromium, against the strom broker and Apache Kafka.

Each test starts the console as a user would (`strom console --bootstrap ... --listen 127.0.0.1:0`),
drives the pages through the browser and checks what a person would see, and that no page logged a console
error.
The schemas page is tested on the console inside `strom broker` (`--registry-listen --console-listen`),
which is how a registry on the strom broker is run.
Screenshots go to $STROM_CONSOLE_SCREENSHOTS when set (that is how docs/console/ is refreshed), else to the
test's tmp_path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from strom.console.cluster import retriable
from tests.integration.console_browser import Chromium
from tests.support.cli import run_strom
from tests.support.scenario import unique_name

READY_PREFIX = "strom console ready on "
ORDER = '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]}'
ORDER_ID_AS_TEXT = '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}'


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """One browser per module: starting Chromium costs about a second."""
    chromium = Chromium()
    yield chromium
    chromium.close()


@pytest.fixture
def browser(chromium: Chromium) -> Iterator[Chromium]:
    """The module's browser, left on a blank page afterwards so no page refreshes from a stopped console."""
    yield chromium
    chromium.goto("about:blank")


@pytest.fixture
def console(any_broker: str) -> Iterator[str]:
    """The console's base URL, serving the cluster at `any_broker`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "strom.cli", "console", "--bootstrap", any_broker, "--listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith(READY_PREFIX + "http://127.0.0.1:"), line
        yield line[len(READY_PREFIX) :]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err


@pytest.fixture
def screenshots(tmp_path: Path, request: pytest.FixtureRequest) -> Path | None:
    """Where to save screenshots: the docs' folder when asked (strom's run only), else tmp_path."""
    wanted = os.environ.get("STROM_CONSOLE_SCREENSHOTS")
    if wanted and "strom" in request.node.callspec.id:
        return Path(wanted)
    return tmp_path


def topic_with_records(bootstrap: str, partitions: int, records: int) -> str:
    topic = unique_name("console")
    created = run_strom("topics", "create", topic, "--partitions", str(partitions), "--bootstrap", bootstrap)
    assert created.returncode == 0, created.stderr
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(records):
        producer.produce(topic, key=f"key-{i}", value=f'{{"order": {i}, "total": {i * 10}}}', partition=0)
    assert producer.flush(30) == 0
    return topic


def group_committed_at(bootstrap: str, topic: str, offset: int) -> str:
    """A consumer group with no active member that committed `offset` on partition 0 of `topic`."""
    group = unique_name("console-group")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        # A fresh Apache Kafka answers NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS until its offsets topic
        # is ready: retry while the answer is retriable.
        for _ in range(100):
            try:
                consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
                return group
            except KafkaException as error:
                if not retriable(error):
                    raise
                consumer.poll(0.2)  # lets the client refresh its coordinator
        raise AssertionError(f"could not commit for {group} on {bootstrap}")
    finally:
        consumer.close()


def test_every_page_loads_without_console_errors(
    console: str, any_broker: str, browser: Chromium, screenshots: Path
) -> None:
    topic = topic_with_records(any_broker, 3, 6)
    group = group_committed_at(any_broker, topic, 2)
    pages = {
        "overview": "/",
        "topics": f"/topics?q={topic}",
        "topic": f"/topics/{topic}",
        "messages": f"/topics/{topic}/messages?partition=0",
        "groups": f"/groups?q={group}",
        "group": f"/groups/{group}",
    }
    for name, path in pages.items():
        mark = len(browser.events)
        browser.goto(console + path)
        assert browser.evaluate("document.querySelector('h1') !== null"), name
        assert browser.evaluate("document.querySelector('.error') === null"), browser.text(".error")
        assert browser.console_errors(mark) == [], (name, browser.console_errors(mark))
        browser.screenshot(screenshots / f"{name}.png")
    # What the pages showed: the filtered lists, the records and the group's lag.
    browser.goto(f"{console}/groups?q={group}")
    assert browser.text("#group-list").startswith(f"1 group matching “{group}”; page 1 of 1.")
    browser.goto(f"{console}/topics?q={topic}")
    assert browser.text("#topic-list").startswith(f"1 topic matching “{topic}”; page 1 of 1.")
    browser.goto(f"{console}/topics/{topic}/messages?partition=0&order=oldest")
    assert '"order": 0' in browser.text("#records")
    browser.goto(f"{console}/groups/{group}")
    assert browser.text("#total-lag") == "4"
    # The live part of the page follows the data: two more records, one refresh, two more lag.
    producer = Producer({"bootstrap.servers": any_broker})
    for _ in range(2):
        producer.produce(topic, value=b"more", partition=0)
    assert producer.flush(30) == 0
    mark = len(browser.events)
    browser.evaluate("window.stromRefresh()")
    assert browser.text("#total-lag") == "6"
    # One lag sample per view of the group: the loop's, the goto's, the refresh's.
    assert browser.evaluate("document.querySelector('svg.chart polyline').points.length") == 3
    assert browser.console_errors(mark) == []


def test_create_a_topic_and_produce_from_the_page_then_find_the_message(
    console: str, any_broker: str, browser: Chromium
) -> None:
    mark = len(browser.events)
    topic = unique_name("made-in-browser")
    browser.goto(f"{console}/topics")
    browser.fill("#topic-name", topic)
    browser.fill("#topic-partitions", "2")
    browser.fill("#topic-configs", "retention.ms=3600000")
    browser.submit("#create-topic")
    assert browser.text(".done") == f"Created topic {topic} with 2 partitions."
    assert "3600000" in browser.text("#configs")

    browser.goto(f"{console}/topics/{topic}/messages")
    browser.fill("#produce-partition", "1")
    browser.fill("#produce-key", "order-7")
    browser.fill("#produce-value", "written by a browser")
    browser.fill("#produce-headers", "source: console-test")
    browser.submit("#produce")
    assert browser.text(".done") == "Produced to partition 1 at offset 0."
    records = browser.text("#records")
    assert "order-7" in records and "written by a browser" in records and "source: console-test" in records
    assert browser.console_errors(mark) == []


def test_resetting_a_groups_offsets_asks_first_then_changes_the_lag(
    console: str, any_broker: str, browser: Chromium
) -> None:
    mark = len(browser.events)
    topic = topic_with_records(any_broker, 1, 5)
    group = group_committed_at(any_broker, topic, 5)
    browser.goto(f"{console}/groups/{group}")
    assert browser.text("#total-lag") == "0"

    browser.fill("#reset-to", "earliest")
    browser.submit("#reset")
    assert "Commit these offsets" in browser.text("#confirm-reset")
    assert browser.text("#total-lag") == "0"  # nothing changed before the confirmation

    browser.submit("#confirm-reset", "#confirm")
    assert browser.text(".done") == f"Reset the offsets of {group} on {topic}."
    assert browser.text("#total-lag") == "5"

    browser.fill("#reset-to", "offset")
    browser.fill("#reset-offset", "3")
    browser.submit("#reset")
    browser.submit("#confirm-reset", "#confirm")
    assert browser.text("#total-lag") == "2"
    assert browser.console_errors(mark) == []


def test_bad_form_input_is_answered_on_the_page_and_changes_nothing(
    console: str, any_broker: str, browser: Chromium
) -> None:
    topic = topic_with_records(any_broker, 1, 3)
    group = group_committed_at(any_broker, topic, 3)

    browser.goto(f"{console}/topics")
    browser.fill("#topic-name", "no/slashes")
    browser.submit("#create-topic")
    assert "'no/slashes' is not a valid topic name" in browser.text(".error")
    assert "no/slashes" not in run_strom("topics", "list", "--bootstrap", any_broker).stdout

    browser.goto(f"{console}/topics/{topic}")
    browser.fill("#config-key", "retention.ms")
    browser.fill("#config-value", "a week")
    browser.submit("#alter-config", "button[value=set]")
    assert "retention.ms" in browser.text(".error") and "a week" in browser.text(".error")
    browser.goto(f"{console}/topics/{topic}")
    assert "a week" not in browser.text("#configs")

    browser.goto(f"{console}/topics/{topic}/messages?partition=0&offset=-1")
    assert browser.text(".error") == "offset must be at least 0, got -1"

    browser.goto(f"{console}/groups/{group}")
    browser.fill("#reset-to", "offset")
    browser.fill("#reset-offset", "-5")
    browser.submit("#reset")
    assert browser.text(".error") == "offset must be at least 0, got -5"
    browser.goto(f"{console}/groups/{group}")
    assert browser.text("#total-lag") == "0"


@pytest.fixture
def broker_with_console(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(registry URL, console URL) of `strom broker --registry-listen ... --console-listen ...`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "strom.cli", "broker", "--data-dir", str(tmp_path / "data"),
         "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines[1].startswith("strom registry ready on http://127.0.0.1:"), lines
        assert lines[2].startswith(READY_PREFIX + "http://127.0.0.1:"), lines
        yield lines[1].removeprefix("strom registry ready on "), lines[2].removeprefix(READY_PREFIX)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err


def test_the_schemas_pages_list_a_subject_and_refuse_an_incompatible_schema(
    broker_with_console: tuple[str, str], browser: Chromium, tmp_path: Path
) -> None:
    registry, console = broker_with_console
    subject = unique_name("orders") + "-value"
    SchemaRegistryClient({"url": registry}).register_schema(subject, Schema(ORDER, "AVRO"))
    shots = Path(os.environ.get("STROM_CONSOLE_SCREENSHOTS") or tmp_path)
    mark = len(browser.events)
    browser.goto(f"{console}/schemas?q={subject}")
    assert browser.text("#subject-list").startswith(f"1 subject matching “{subject}”; page 1 of 1.")
    assert browser.evaluate("document.querySelector('.error') === null"), browser.text(".error")
    browser.screenshot(shots / "schemas.png")
    browser.goto(f"{console}/schemas/{subject}")
    assert browser.text("#level") == "Compatibility: BACKWARD"
    assert '"type": "long"' in browser.text("#schema")  # pretty-printed, one field a line
    assert browser.console_errors(mark) == []

    browser.fill("#check-type", "AVRO")
    browser.fill("#check-text", ORDER_ID_AS_TEXT)
    browser.submit("#check-schema")
    verdict = browser.text("#verdict")
    assert verdict.startswith(f"Not compatible with {subject} at BACKWARD."), verdict
    assert "/id/: reader type string cannot read writer type long" in verdict  # the registry's reason
    browser.screenshot(shots / "schema.png")

    browser.fill("#check-text", ORDER)
    browser.submit("#check-schema")
    assert browser.text("#verdict").startswith("Compatible")
    assert browser.console_errors(mark) == []
    # A registry's refusal is shown on the page (and the browser logs the page's own 404, nothing else).
    mark = len(browser.events)
    browser.goto(f"{console}/schemas/no-such-subject")
    assert browser.text(".error") == "the schema registry says: Subject 'no-such-subject' not found."
    assert [e for e in browser.console_errors(mark) if "404" not in e] == []
