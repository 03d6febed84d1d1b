"""The tables ``python -m bench end-to-end`` prints: every job and baseline per round with
its records/s per store, the ratios, each process's CPU share, and the targets."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from bench.harness.report import console, new_table, plain_table, print_footer, verdict

PROCESSES = (
    "extractor",
    "tableinator",
    "graphinator",
    "rabbitmq",
    "postgresql",
    "neo4j",
    "bulk-import",
)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}x"


def job_row(table: Table, number: int, job: dict[str, Any], versus: str) -> None:
    stores = job.get("store_records_per_second", {})
    graph = job["nodes"] + job["relationships"]
    table.add_row(
        str(number),
        job["label"],
        f"{job['records']:,}",
        f"{job['seconds']:,.1f}",
        _rate(job["records_per_second"]),
        _rate(stores.get("tableinator")),
        _rate(stores.get("graphinator")),
        f"{graph:,}" if graph else "-",
        versus,
    )


def baseline_row(table: Table, number: int, baseline: dict[str, Any]) -> None:
    end = baseline["end_to_end"]
    table.add_row(
        str(number),
        "discogsography-style: a message per record, each confirm awaited",
        f"{end['records']:,}",
        f"{end['seconds']:,.1f}",
        _rate(end["records_per_second"]),
        _rate(baseline.get("postgres", {}).get("records_per_second")),
        _rate(baseline.get("neo4j", {}).get("records_per_second")),
        "-",
        "",
    )


def jobs_table(result: dict[str, Any]) -> Table:
    columns = (
        "round",
        "path",
        "records",
        "s",
        "rec/s end to end",
        "rec/s PostgreSQL",
        "rec/s Neo4j",
        "nodes+rels",
        "ratio",
    )
    table = new_table("end to end: the project against its peers", columns, ("path",))
    for number, r in enumerate(result["rounds"], 1):
        for path in ("demo", "dump"):
            if path not in r:
                continue
            one = r[path]
            job_row(table, number, one["both"], _times(one["vs_baseline"]) + " baseline")
            for job in list(one.get("modes", {}).values())[1:]:
                job_row(table, number, job, f"same graph: {verdict(one['same_graph'])}")
            baseline_row(table, number, one["baseline"])
            if "postgres" in one:
                job_row(table, number, one["postgres"], _times(one["vs_dlt"]) + " dlt")
                dlt = one["dlt"]
                table.add_row(
                    str(number),
                    dlt["label"],
                    f"{dlt['records']:,}",
                    f"{dlt['seconds']:,.1f}",
                    _rate(dlt["records_per_second"]),
                    _rate(dlt["records_per_second"]),
                    "-",
                    "-",
                    "",
                )
    return table


def cpu_table(result: dict[str, Any]) -> Table:
    """Each process's CPU seconds over the job's wall time and the machine's cores."""
    columns = ("round", "job", *PROCESSES)
    table = new_table("CPU share of the machine per process (1.00 = every core)", columns, ("job",))
    for number, r in enumerate(result["rounds"], 1):
        for path in ("demo", "dump"):
            if path in r:
                jobs = r[path].get("modes") or {path: r[path]["both"]}
                for name, job in jobs.items():
                    share = job["cpu_share"]
                    cells = (f"{share[p]:.2f}" if p in share else "-" for p in PROCESSES)
                    table.add_row(str(number), path if name == path else f"dump {name}", *cells)
    return table


def print_results(result: dict[str, Any]) -> None:
    out = console(150)
    out.print(jobs_table(result))
    out.print(cpu_table(result))
    hours = [r["dump"]["projected_hours_34m"] for r in result["rounds"] if "dump" in r]
    if hours:
        out.print(
            "34M-record dump projected at each round's rate: "
            + ", ".join(f"{h:.2f} h" if h else "-" for h in hours)
        )
    targets = plain_table("targets (met only when they hold in every round)", ("target", "met"))
    for name, met in result["targets"].items():
        targets.add_row(name, verdict(met))
    out.print(targets)
    options = result["options"]
    print_footer(out, result, f"{options['records']:,} records in the demo API; ")
