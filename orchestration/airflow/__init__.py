"""Airflow 3: the example DAG (dags/) and the deferrable wait it uses."""
