"""The strom.streams runtime: runs a Topology's tasks on real brokers through confluent-kafka.

One module per job: `config` (validated Streams config), `topics` (source checks, internal topic creation),
`tasks` (task ids, directories, locks), `thread` (the consume-process-commit loop and rebalances), `collector`
(the producer side), `restore` (changelog restore), `checkpoint` (the `.checkpoint` file), `global_state`
(GlobalKTable bootstrap and updates). `strom.streams.app.Streams` is the public entry point.
"""
