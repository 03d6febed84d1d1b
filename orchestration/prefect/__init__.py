"""Prefect 3: the example flow (backfill_flow.py)."""
