"""strom console: a web console for a Kafka cluster, strom's broker or Apache Kafka alike.

It is a Kafka client (confluent-kafka's AdminClient, Consumer and Producer), never a part of a broker, so it
shows what any client would see. One module per job: `cluster` asks the cluster (topics, configs, offsets,
groups), `records` reads and writes messages, `forms` turns form fields into checked values, `history` keeps
the samples behind rates and lag charts, `web` serves the pages. `strom console` starts it.
"""

from strom.console.errors import ClusterError, ConsoleError, FormError

__all__ = ["ClusterError", "ConsoleError", "FormError"]
