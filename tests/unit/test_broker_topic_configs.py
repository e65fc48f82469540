"""How a topic config's value is found (synonyms) and changed (IncrementalAlterConfigs operations)."""

from __future__ import annotations

import pytest

from strom.broker.config import BrokerConfig, ConfigError, ConfigSource, UnknownConfigOperation
from strom.protocol.error_codes import ErrorCode
from strom.protocol.field_values import AlterConfigOp


def test_synonyms_list_the_override_then_the_explicit_broker_key_then_the_default() -> None:
    config = BrokerConfig({"log.retention.ms": "1000"})
    chain = config.topic_synonyms("retention.ms", {"retention.ms": "5"})
    assert [(name, source) for name, _value, source in chain] == [
        ("retention.ms", ConfigSource.TOPIC_CONFIG),
        ("log.retention.ms", ConfigSource.STATIC_BROKER_CONFIG),
        ("log.retention.ms", ConfigSource.DEFAULT_CONFIG),
    ]
    assert chain[0][1] == "5"


def test_incremental_operations_set_delete_append_and_subtract() -> None:
    config = BrokerConfig()
    overrides = config.alter_topic_config({}, "segment.bytes", AlterConfigOp.SET, "1048576")
    assert overrides == {"segment.bytes": "1048576"}
    overrides = config.alter_topic_config(overrides, "segment.bytes", AlterConfigOp.DELETE, None)
    assert overrides == {}
    overrides = config.alter_topic_config(overrides, "cleanup.policy", AlterConfigOp.APPEND, "compact")
    assert overrides == {"cleanup.policy": "delete,compact"}
    overrides = config.alter_topic_config(overrides, "cleanup.policy", AlterConfigOp.SUBTRACT, "delete")
    assert overrides == {"cleanup.policy": "compact"}


def test_bad_incremental_operations_name_the_problem() -> None:
    config = BrokerConfig()
    with pytest.raises(ConfigError, match="not a list"):
        config.alter_topic_config({}, "segment.bytes", AlterConfigOp.APPEND, "1")
    with pytest.raises(ConfigError, match="unknown topic configuration 'nope'"):
        config.alter_topic_config({}, "nope", AlterConfigOp.SET, "1")
    with pytest.raises(UnknownConfigOperation, match="operation 9") as refused:
        config.alter_topic_config({}, "segment.bytes", 9, "1")
    assert refused.value.error_code == ErrorCode.INVALID_REQUEST
