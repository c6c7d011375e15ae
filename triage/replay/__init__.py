"""Event logs (JSON Lines, one Kafka record per line) and replaying them."""
