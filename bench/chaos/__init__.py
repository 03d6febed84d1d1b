"""``python -m bench chaos``: the fault-injection suite.

A clean reference run of a demo-dataset job, then one run per scenario with faults injected
while it runs (``scenarios``), each compared with the reference row by row in PostgreSQL
and as node and relationship sets in Neo4j (``stores``). The processes are real
(``processes``); network faults go through Toxiproxy (``toxiproxy``).
"""
