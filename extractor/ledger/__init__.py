"""The job ledger in PostgreSQL: jobs, slices, leases, checkpoints, snapshots, work tasks."""
