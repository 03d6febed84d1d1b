"""extractor: the backfill driver. Plans slices, fetches pages, publishes page batches."""
