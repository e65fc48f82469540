"""strom console: a web console for a Kafka cluster, strom's broker or Apache Kafka alike.

It is a Kafka client (confluent-kafka's AdminClient, Consumer and Producer), even when run inside
`strom broker`, so it shows what any client would see. One module per job: `cluster` asks the cluster
(topics, configs, offsets, groups), `records` reads and writes messages, `forms` turns form fields into
checked values, `history` keeps the samples behind rates and lag charts, `registry` reads a schema registry
(decoding and the schemas pages), `web` serves the pages, `server` runs them for `strom console` and beside
`strom broker`.
"""

from strom.console.errors import ClusterError, ConsoleError, FormError, RegistryError

__all__ = ["ClusterError", "ConsoleError", "FormError", "RegistryError"]
