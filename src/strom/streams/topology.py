"""Topology: the processor graph a ``StreamsBuilder`` (or the low-level API) produces, independent of the
application id and of partitions.

The graph is split into sub-topologies exactly as Kafka Streams does: nodes connected by an edge, or sharing a
state store, belong together; a repartition topic cuts the graph (one sub-topology writes it, another reads
it). Each sub-topology becomes one task per input partition. Internal topic names follow Kafka Streams:
``<application.id>-<name>-repartition`` and ``<application.id>-<store>-changelog``.

Invariant: node names are unique and every parent named by a node exists before it (the graph is a DAG in
insertion order). Queries (sub-topologies, topic groups) are computed on demand from the node table, so the
low-level ``add_*`` calls may be mixed freely with the DSL until the topology is handed to a task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strom.streams.errors import TopologyError
from strom.streams.processor.api import Processor, ProcessorNode
from strom.streams.processor.context import TopicNameExtractor
from strom.streams.processor.node import Node, SinkNode, SourceNode, TimestampExtractor
from strom.streams.serdes import Serde
from strom.streams.state.stores import StoreSpec

# Kafka Streams' RepartitionTopicConfig defaults; the runtime purges consumed data with DeleteRecords.
REPARTITION_TOPIC_CONFIGS = {"cleanup.policy": "delete", "segment.bytes": "52428800", "retention.ms": "-1"}


@dataclass(frozen=True)
class TopicRef:
    """A topic named by the user (``internal=False``) or an internal topic whose full name is
    ``<application.id>-<name>``."""

    name: str
    internal: bool = False

    def full(self, application_id: str) -> str:
        return f"{application_id}-{self.name}" if self.internal else self.name


@dataclass
class NodeSpec:
    name: str
    kind: str  # "source" | "processor" | "sink"
    make: Callable[[], Node]
    parents: list[str]
    stores: list[str] = field(default_factory=list)
    topics: list[TopicRef] = field(default_factory=list)  # sources: read; sinks: written (empty if dynamic)
    is_global: bool = False


@dataclass(frozen=True)
class InternalTopic:
    name: str
    kind: str  # "repartition" | "changelog"
    configs: dict[str, str]
    subtopology: int


@dataclass(frozen=True)
class TopicGroup:
    subtopology: int
    source_topics: list[str]
    repartition_sources: list[str]
    sink_topics: list[str]
    changelog_topics: dict[str, str]


@dataclass(frozen=True)
class Subtopology:
    id: int
    nodes: list[str]
    sources: list[TopicRef]
    sinks: list[TopicRef]
    stores: list[str]


class Topology:
    """A processor graph. Build it with ``StreamsBuilder`` or with
    ``add_source``/``add_processor``/``add_sink``/ ``add_state_store``."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeSpec] = {}
        self.stores: dict[str, StoreSpec] = {}
        self.global_stores: dict[
            str, tuple[StoreSpec, TopicRef, str]
        ] = {}  # store -> (spec, topic, source node)
        self.repartition_partitions: dict[
            str, int | None
        ] = {}  # internal base name -> explicit partition count
        self.copartition_groups: list[set[TopicRef]] = []
        self._topic_sources: dict[TopicRef, str] = {}

    # -- construction -----------------------------------------------------------------------------------

    def _check_new(self, name: str, parents: tuple[str, ...] | list[str]) -> None:
        if name in self.nodes:
            raise TopologyError(f"a processor named {name!r} already exists")
        for parent in parents:
            if parent not in self.nodes:
                raise TopologyError(
                    f"processor {name!r}: parent {parent!r} does not exist (add parents first)"
                )
            if self.nodes[parent].kind == "sink":
                raise TopologyError(
                    f"processor {name!r}: parent {parent!r} is a sink and cannot have children"
                )

    def add_node(self, spec: NodeSpec) -> None:
        self._check_new(spec.name, spec.parents)
        if spec.kind == "source":
            for topic in spec.topics:
                if topic in self._topic_sources:
                    raise TopologyError(
                        f"topic {topic.name!r} is already read by source {self._topic_sources[topic]!r}; "
                        "a topic can be the source of only one node (merge the streams instead)"
                    )
                self._topic_sources[topic] = spec.name
        for store in spec.stores:
            if store not in self.stores and store not in self.global_stores:
                raise TopologyError(f"processor {spec.name!r} uses store {store!r}, which was never added")
        self.nodes[spec.name] = spec

    def add_source(
        self,
        name: str,
        topics: list[str] | str,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        timestamp_extractor: TimestampExtractor | None = None,
    ) -> None:
        """A source node reading ``topics``; None serdes mean the config's defaults; ``timestamp_extractor``
        (key, value, record timestamp) -> event time replaces the record timestamp."""
        names = [topics] if isinstance(topics, str) else list(topics)
        if not names:
            raise TopologyError(f"source {name!r} needs at least one topic")
        refs = [TopicRef(t) for t in names]
        self.add_node(
            NodeSpec(
                name,
                "source",
                lambda: SourceNode(name, names, key_serde, value_serde, timestamp_extractor),
                [],
                topics=refs,
            )
        )

    def add_processor(
        self, name: str, supplier: Callable[[], Processor], *parents: str, stores: list[str] | None = None
    ) -> None:
        """A user ``Processor`` (a fresh one per task from ``supplier``) connected to ``stores``."""
        if not parents:
            raise TopologyError(f"processor {name!r} needs at least one parent")
        store_names = list(stores or [])
        self.add_node(
            NodeSpec(
                name,
                "processor",
                lambda: ProcessorNode(name, supplier(), store_names),
                list(parents),
                stores=store_names,
            )
        )

    def add_sink(
        self,
        name: str,
        topic: str | TopicNameExtractor,
        *parents: str,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
    ) -> None:
        """A sink writing to ``topic`` or to ``topic(key, value, context)`` per record."""
        if not parents:
            raise TopologyError(f"sink {name!r} needs at least one parent")
        fixed = topic if isinstance(topic, str) else None
        extractor = None if isinstance(topic, str) else topic
        refs = [] if fixed is None else [TopicRef(fixed)]
        self.add_node(
            NodeSpec(
                name,
                "sink",
                lambda: SinkNode(name, fixed, extractor, key_serde, value_serde),
                list(parents),
                topics=refs,
            )
        )

    def reserve_repartition_topic(self, topic_base: str, num_partitions: int | None = None) -> TopicRef:
        """Claim the internal topic ``<application.id>-<topic_base>`` (``num_partitions`` None: as many as
        the co-partitioned source topics). Each name is claimed once, since two writers of one repartition
        topic would mix their records; claim it before adding nodes named after it."""
        if topic_base in self.repartition_partitions:
            raise TopologyError(
                f"repartition topic name {topic_base!r} is used twice; give the operations distinct names"
            )
        self.repartition_partitions[topic_base] = num_partitions
        return TopicRef(topic_base, internal=True)

    def add_repartition_topic(
        self,
        ref: TopicRef,
        sink: str,
        source: str,
        parent: str,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
    ) -> None:
        """Route ``parent``'s records through the reserved topic ``ref``: the sink ``sink`` writes them and
        the source ``source`` reads them back, so its children see them partitioned by key."""
        topic_base = ref.name
        self.add_node(
            NodeSpec(
                sink,
                "sink",
                lambda: SinkNode(sink, topic_base, None, key_serde, value_serde),
                [parent],
                topics=[ref],
            )
        )
        self.add_node(
            NodeSpec(
                source,
                "source",
                lambda: SourceNode(source, [topic_base], key_serde, value_serde),
                [],
                topics=[ref],
            )
        )

    def add_state_store(self, spec: StoreSpec, *processor_names: str) -> None:
        """Declare a store and connect it to existing processors."""
        if spec.name in self.stores or spec.name in self.global_stores:
            raise TopologyError(f"a state store named {spec.name!r} already exists")
        self.stores[spec.name] = spec
        for processor in processor_names:
            self.connect_processor_and_store(processor, spec.name)

    def connect_processor_and_store(self, processor: str, store: str) -> None:
        if processor not in self.nodes:
            raise TopologyError(f"cannot connect store {store!r}: no processor {processor!r}")
        if store not in self.stores and store not in self.global_stores:
            raise TopologyError(f"cannot connect processor {processor!r}: no store {store!r}")
        if store not in self.nodes[processor].stores:
            self.nodes[processor].stores.append(store)

    def add_global_store(self, spec: StoreSpec, topic: str, source_name: str) -> None:
        """A store holding every partition of ``topic``, filled by the global task (the topic is its
        changelog); the store's serdes deserialise the topic."""
        if spec.name in self.stores or spec.name in self.global_stores:
            raise TopologyError(f"a state store named {spec.name!r} already exists")
        self.global_stores[spec.name] = (spec, TopicRef(topic), source_name)
        self.add_node(
            NodeSpec(
                source_name,
                "source",
                lambda: SourceNode(source_name, [topic], spec.key_serde, spec.value_serde),
                [],
                stores=[spec.name],
                topics=[TopicRef(topic)],
                is_global=True,
            )
        )

    # -- structure --------------------------------------------------------------------------------------

    def subtopologies(self) -> list[Subtopology]:
        order = [n for n, spec in self.nodes.items() if not spec.is_global]
        parent_of = {n: n for n in order}

        def find(n: str) -> str:
            while parent_of[n] != n:
                parent_of[n] = parent_of[parent_of[n]]
                n = parent_of[n]
            return n

        def union(a: str, b: str) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent_of[max(ra, rb, key=order.index)] = min(ra, rb, key=order.index)

        store_owner: dict[str, str] = {}
        for name in order:
            spec = self.nodes[name]
            for parent in spec.parents:
                union(name, parent)
            for store in spec.stores:
                if store in self.global_stores:
                    continue
                if store in store_owner:
                    union(name, store_owner[store])
                else:
                    store_owner[store] = name
        groups: dict[str, list[str]] = {}
        for name in order:
            groups.setdefault(find(name), []).append(name)
        result = []
        for index, members in enumerate(groups.values()):
            sources = [t for m in members if self.nodes[m].kind == "source" for t in self.nodes[m].topics]
            sinks = [t for m in members if self.nodes[m].kind == "sink" for t in self.nodes[m].topics]
            stores = sorted({s for m in members for s in self.nodes[m].stores if s in self.stores})
            result.append(Subtopology(index, members, sources, sinks, stores))
        return result

    @property
    def subtopology_ids(self) -> list[int]:
        return [s.id for s in self.subtopologies()]

    def subtopology(self, subtopology_id: int) -> Subtopology:
        for sub in self.subtopologies():
            if sub.id == subtopology_id:
                return sub
        raise TopologyError(f"no sub-topology {subtopology_id}; the topology has {self.subtopology_ids}")

    @property
    def global_topics(self) -> list[str]:
        return [ref.name for _spec, ref, _source in self.global_stores.values()]

    @property
    def source_topics(self) -> list[str]:
        """User topics read by stream tasks (not internal, not global)."""
        return [t.name for s in self.subtopologies() for t in s.sources if not t.internal]

    def topic_groups(self, application_id: str) -> list[TopicGroup]:
        groups = []
        for sub in self.subtopologies():
            groups.append(
                TopicGroup(
                    sub.id,
                    [t.full(application_id) for t in sub.sources],
                    [t.full(application_id) for t in sub.sources if t.internal],
                    [t.full(application_id) for t in sub.sinks],
                    {
                        s: self.stores[s].changelog_topic(application_id)
                        for s in sub.stores
                        if self.stores[s].logging
                    },
                )
            )
        return groups

    def internal_topics(self, application_id: str) -> list[InternalTopic]:
        topics = []
        for sub in self.subtopologies():
            for ref in sub.sources:
                if ref.internal:
                    topics.append(
                        InternalTopic(
                            ref.full(application_id), "repartition", dict(REPARTITION_TOPIC_CONFIGS), sub.id
                        )
                    )
            for store in sub.stores:
                spec = self.stores[store]
                if spec.logging:
                    topics.append(
                        InternalTopic(
                            spec.changelog_topic(application_id), "changelog", spec.topic_configs(), sub.id
                        )
                    )
        return topics

    def resolve_partitions(self, application_id: str, partitions_of: Callable[[str], int]) -> dict[str, int]:
        """Partition counts of every topic the stream tasks read or create, given the counts of user topics.

        Repartition topics get the largest count among the sources of the sub-topology writing them (or their
        explicit count); co-partitioned inputs must agree, repartition topics in such a group take the user
        topics' count; a changelog has one partition per task of its sub-topology. Raises TopologyError naming
        the topics when co-partitioned user topics differ.
        """
        subs = self.subtopologies()
        counts: dict[TopicRef, int] = {}
        for sub in subs:
            for ref in sub.sources:
                if not ref.internal:
                    counts[ref] = partitions_of(ref.name)
        for base, explicit in self.repartition_partitions.items():
            if explicit is not None:
                counts[TopicRef(base, True)] = explicit
        for _ in range(len(subs) + 1):
            changed = False
            for sub in subs:
                known = [counts[r] for r in sub.sources if r in counts]
                if len(known) != len(sub.sources):
                    continue
                for ref in sub.sinks:
                    if ref.internal and ref not in counts:
                        counts[ref] = max(known)
                        changed = True
            if not changed:
                break
        for group in self.copartition_groups:
            external = {r: counts[r] for r in group if not r.internal}
            if len(set(external.values())) > 1:
                detail = ", ".join(
                    f"{r.name} has {n}" for r, n in sorted(external.items(), key=lambda i: i[0].name)
                )
                raise TopologyError(
                    f"co-partitioned topics must have the same number of partitions, but {detail}; "
                    "repartition one side (KStream.repartition) or recreate the topics"
                )
            internal = [r for r in group if r.internal and self.repartition_partitions.get(r.name) is None]
            if external:
                target = next(iter(external.values()))
            else:
                target = max((counts[r] for r in group if r in counts), default=0)
            for ref in internal:
                counts[ref] = target
        missing = [r.full(application_id) for s in subs for r in s.sources if r not in counts]
        if missing:
            raise TopologyError(f"cannot determine the partition count of {missing}")
        result = {ref.full(application_id): n for ref, n in counts.items()}
        for sub in subs:
            tasks = max((counts[r] for r in sub.sources), default=0)
            for store in sub.stores:
                if self.stores[store].logging:
                    result[self.stores[store].changelog_topic(application_id)] = tasks
        return result

    def task_count(self, subtopology_id: int, partitions: dict[str, int], application_id: str) -> int:
        """Tasks of a sub-topology: the largest partition count among its source topics."""
        sub = self.subtopology(subtopology_id)
        return max((partitions[r.full(application_id)] for r in sub.sources), default=0)

    # -- description ------------------------------------------------------------------------------------

    def describe(self) -> str:
        """Kafka's ``TopologyDescription`` text: sub-topologies, nodes, topics, stores and edges."""
        children: dict[str, list[str]] = {n: [] for n in self.nodes}
        for name, spec in self.nodes.items():
            for parent in spec.parents:
                children[parent].append(name)
        lines = ["Topologies:"]

        def node_lines(name: str) -> None:
            spec = self.nodes[name]
            if spec.kind == "source":
                lines.append(f"    Source: {name} (topics: [{', '.join(t.name for t in spec.topics)}])")
            elif spec.kind == "sink":
                target = spec.topics[0].name if spec.topics else "<dynamic>"
                lines.append(f"    Sink: {name} (topic: {target})")
            else:
                lines.append(f"    Processor: {name} (stores: [{', '.join(spec.stores)}])")
            if children[name]:
                lines.append(f"      --> {', '.join(children[name])}")
            if spec.parents:
                lines.append(f"      <-- {', '.join(spec.parents)}")

        for sub in self.subtopologies():
            lines.append(f"   Sub-topology: {sub.id}")
            for name in sub.nodes:
                node_lines(name)
        for offset, (store, (_spec, _ref, source)) in enumerate(self.global_stores.items()):
            lines.append(
                f"   Sub-topology: {len(self.subtopologies()) + offset} for global store {store} "
                "(will not generate tasks)"
            )
            node_lines(source)
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.describe()
