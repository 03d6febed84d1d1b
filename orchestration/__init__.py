"""Running backfill jobs from the schedulers users already have: Airflow 3 and Prefect 3.

Both use the public Python API (``extractor.backfill``, ``extractor.scheduling``) and live in
optional extras, each installed into its own virtualenv by scripts/setup-orchestration.sh.
"""
