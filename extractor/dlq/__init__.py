"""Dead letters: reading, grouping, replaying and purging the consumers' dead-letter queues."""
