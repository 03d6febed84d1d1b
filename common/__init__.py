"""What the extractor, tableinator and graphinator share: settings, the dataset spec, the
message envelope, broker topology, the batch processor, resilience helpers and metrics."""
