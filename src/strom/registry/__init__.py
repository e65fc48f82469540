"""strom registry: a schema registry that Confluent's clients use unchanged, stored in the `_schemas` topic.

`SchemasTopic` (store) reads and writes the topic, `SchemaRegistry` (service) implements the operations
with Confluent's rules, `compatibility` and `avro` decide which schema may follow which, and `app` serves the
REST API v1 over HTTP. `strom registry` (strom.commands.registry) runs the whole. On the client side,
`client` is a small blocking registry client and `serdes` the Avro and JSON Schema serdes for strom.streams
in Confluent's wire format (importing this package loads neither the service nor the serdes).
"""
