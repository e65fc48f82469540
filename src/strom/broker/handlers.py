"""Which handler answers which Kafka API, and at which versions: the one table of supported versions.

"Who answers API key 23?" is answered here and nowhere else. ApiVersions advertises exactly this table;
the server routes every request through it. Versions are the ones the codec (kio) can decode; docs/protocol.md
describes them for users.
"""

from __future__ import annotations

from collections.abc import Mapping

from strom.broker.api import admin, apiversions, fetch, groups, idempotence, metadata, offsets, produce
from strom.broker.dispatch import ApiSpec
from strom.protocol.api_keys import ApiKey

HANDLERS: Mapping[int, ApiSpec] = {  # keyed by ApiKey members
    ApiKey.PRODUCE: ApiSpec(3, 9, produce.produce, advertise_min=0),
    ApiKey.FETCH: ApiSpec(4, 12, fetch.fetch),
    ApiKey.LIST_OFFSETS: ApiSpec(1, 7, offsets.list_offsets),
    ApiKey.METADATA: ApiSpec(0, 12, metadata.handle),
    ApiKey.OFFSET_COMMIT: ApiSpec(2, 8, groups.offset_commit),
    ApiKey.OFFSET_FETCH: ApiSpec(1, 7, groups.offset_fetch),
    ApiKey.FIND_COORDINATOR: ApiSpec(0, 3, groups.find_coordinator),
    ApiKey.JOIN_GROUP: ApiSpec(0, 7, groups.join_group),
    ApiKey.HEARTBEAT: ApiSpec(0, 4, groups.heartbeat),
    ApiKey.LEAVE_GROUP: ApiSpec(0, 4, groups.leave_group),
    ApiKey.SYNC_GROUP: ApiSpec(0, 5, groups.sync_group),
    ApiKey.DESCRIBE_GROUPS: ApiSpec(0, 5, groups.describe_groups),
    ApiKey.LIST_GROUPS: ApiSpec(0, 4, groups.list_groups),
    ApiKey.API_VERSIONS: ApiSpec(0, 4, apiversions.handle),
    ApiKey.CREATE_TOPICS: ApiSpec(2, 5, admin.create_topics),
    ApiKey.DELETE_TOPICS: ApiSpec(1, 4, admin.delete_topics),
    ApiKey.DELETE_RECORDS: ApiSpec(0, 1, offsets.delete_records),
    ApiKey.INIT_PRODUCER_ID: ApiSpec(0, 4, idempotence.init_producer_id),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: ApiSpec(2, 4, offsets.offset_for_leader_epoch),
    ApiKey.DESCRIBE_CONFIGS: ApiSpec(1, 4, admin.describe_configs),
    ApiKey.ALTER_CONFIGS: ApiSpec(0, 1, admin.alter_configs),
    ApiKey.CREATE_PARTITIONS: ApiSpec(0, 2, admin.create_partitions),
    ApiKey.DELETE_GROUPS: ApiSpec(0, 1, groups.delete_groups),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: ApiSpec(0, 1, admin.incremental_alter_configs),
    ApiKey.OFFSET_DELETE: ApiSpec(0, 0, groups.offset_delete),
    ApiKey.DESCRIBE_CLUSTER: ApiSpec(0, 1, admin.describe_cluster),
}

# api_key -> (min, max) as sent in ApiVersions, in key order.
ADVERTISED: Mapping[int, tuple[int, int]] = {
    key: (spec.advertised_min, spec.max_version) for key, spec in sorted(HANDLERS.items())
}
