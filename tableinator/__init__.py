"""tableinator: consumes page batches and upserts them into PostgreSQL."""
