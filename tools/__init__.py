"""Tooling around strom that is not strom itself: fetching and running the real peers (Apache Kafka, kcat,
franz-go) for the test suite, the benchmarks and humans (tools/kafka.sh)."""
