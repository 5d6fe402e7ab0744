"""The sweep report: every job of a multirun in one table (overrides, status, best val metric, test metrics,
duration) and mean ± std over seeds per configuration; printed, and saved as CSV and Markdown in the sweep dir.
`ReportCallback` (conf/hydra/default.yaml) writes it at the end of every multirun; `senti_lit.report` on demand."""
from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

METRICS = ("test/acc", "test/macro_f1", "test/micro_f1")


def job_dirs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()),
                  key=lambda p: (len(p.name), p.name))


def read_job(job: Path) -> dict[str, Any]:
    overrides = [o for o in OmegaConf.to_container(OmegaConf.load(job / ".hydra" / "overrides.yaml"))
                 if not o.split("=", 1)[0].lstrip("+~").startswith(("hydra.", "paths."))]
    row: dict[str, Any] = {"job": job.name, "overrides": " ".join(overrides)}
    if (job / "metrics.json").is_file():
        metrics = json.loads((job / "metrics.json").read_text())
        best = next((k for k in metrics if k.startswith("best/")), None)
        row.update(status="ok", best=metrics.get(best), best_metric=best,
                   seconds=metrics.get("time/total_seconds"),
                   **{m: metrics[m] for m in METRICS if m in metrics})
    elif (job / "failed.json").is_file():
        row.update(status="failed", error=json.loads((job / "failed.json").read_text()).get("error"))
    else:
        row.update(status="no result")  # still running, or killed
    return row


REPEATS = ("seed", "data.split.fold")  # what varies between repeats of one configuration (seeds, CV folds)


def configuration(overrides: str) -> str:
    """A job's overrides without its seed or CV fold: the jobs of one configuration over several seeds (or the
    folds of a cross-validation) share it."""
    return " ".join(o for o in overrides.split() if o.split("=", 1)[0].lstrip("+") not in REPEATS) or "(the shared settings)"


def group(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(configuration(row["overrides"]), []).append(row)
    out = []
    for name, members in groups.items():
        ok = [r for r in members if r["status"] == "ok"]
        entry: dict[str, Any] = {"configuration": name, "jobs": len(members), "ok": len(ok)}
        for key in ("best", *METRICS):
            values = [r[key] for r in ok if r.get(key) is not None]
            if values:  # numbers (the CSV keeps them numbers); one run has no spread
                entry[key] = statistics.mean(values)
                entry[f"{key} std"] = statistics.stdev(values) if len(values) > 1 else None
        out.append(entry)
    return out


def with_spread(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For the printed tables: `mean ± std` in one cell (a single run: its value alone)."""
    shown = []
    for entry in groups:
        row = {k: v for k, v in entry.items() if not k.endswith(" std")}
        for key in ("best", *METRICS):
            if entry.get(f"{key} std") is not None:
                row[key] = f"{entry[key]:.4f} ± {entry[f'{key} std']:.4f}"
        shown.append(row)
    return shown


def markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c), c) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def fmt(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if column == "seconds" and isinstance(value, (int, float)):
        return f"{value:.0f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def columns_of(rows: list[dict[str, Any]], first: list[str]) -> list[str]:
    """`first`, then every other key the rows have, without the columns that are empty in every row."""
    seen = list(first)
    for row in rows:
        seen += [k for k in row if k not in seen]
    return [c for c in seen if any(fmt(r.get(c)) for r in rows)]


def shared_overrides(rows: list[dict[str, Any]]) -> list[str]:
    """The overrides every job has (the sweep's fixed settings), in the first job's order."""
    if len(rows) < 2:
        return []
    common = set.intersection(*(set(r["overrides"].split()) for r in rows))
    return [o for o in rows[0]["overrides"].split() if o in common]


def varying(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Overrides shared by every job dropped (the report's header names them): what is left tells the jobs apart."""
    shared = set(shared_overrides(rows))
    return [{**r, "overrides": " ".join(o for o in r["overrides"].split() if o not in shared)} for r in rows]


def datasets_of(sweep: Path) -> list[str]:
    """The `data=` choice of every job (Hydra's record of the run), in job order, each once."""
    names: list[str] = []
    for job in job_dirs(sweep):
        hydra_file = job / ".hydra" / "hydra.yaml"
        if hydra_file.is_file():
            name = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices.data", default=None)
            if name and name not in names:
                names.append(str(name))
    return names


def write_report(sweep: Path, console: Console | None = None) -> dict[str, list[dict[str, Any]]]:
    """Collect the sweep's jobs, print both tables, save jobs.csv, configurations.csv and report.md."""
    all_rows = [read_job(job) for job in job_dirs(sweep)]
    shared, datasets = shared_overrides(all_rows), datasets_of(sweep)
    rows = varying(all_rows)
    groups = group(rows)
    job_cols = columns_of(rows, ["job", "overrides", "status", "best_metric", "best", *METRICS, "seconds"])
    group_cols = columns_of(groups, ["configuration", "jobs", "ok", *(c for m in ("best", *METRICS)
                                                                     for c in (m, f"{m} std"))])
    shown = with_spread(groups)
    shown_cols = [c for c in group_cols if not c.endswith(" std")]
    header = f"data: {', '.join(datasets) or 'unknown'}; shared by every job: {' '.join(shared) or 'no override'}"
    for name, data, cols in (("jobs.csv", rows, job_cols), ("configurations.csv", groups, group_cols)):
        with (sweep / name).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")  # columns empty in every row left out
            writer.writeheader()
            writer.writerows(data)
    (sweep / "report.md").write_text(
        f"# Sweep {sweep}\n\n{header}\n\n## Jobs\n\n{markdown(rows, job_cols)}\n\n"
        f"## Configurations (mean ± std over seeds)\n\n{markdown(shown, shown_cols)}\n", encoding="utf-8")
    console = console or Console()
    print(f"{sweep.name}: {header}", file=console.file)
    for title, data, cols in (("jobs", rows, job_cols), ("configurations (mean ± std over seeds)", shown, shown_cols)):
        if not console.is_terminal:  # piped or logged: no terminal width to fit, so no cell is cut
            print(f"{sweep.name}: {title}\n{markdown(data, cols)}\n", file=console.file)
            continue
        table = Table(title=f"{sweep.name}: {title}")
        for col in cols:  # long cells wrap at the terminal's width instead of being cut
            table.add_column(col, overflow="fold")
        for row in data:
            table.add_row(*(fmt(row.get(c), c) for c in cols))
        console.print(table)
    return {"jobs": rows, "configurations": groups}


class ReportCallback(Callback):
    """Hydra callback (conf/hydra/default.yaml): the sweep report once every job has ended."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        if not (sweep.is_dir() and job_dirs(sweep)):
            return
        failed = [row for row in write_report(sweep)["jobs"] if row["status"] == "failed"]
        if failed:  # the other jobs ran and the report is written; the command still says it did not all work
            print(f"{len(failed)} of {len(job_dirs(sweep))} jobs failed: "
                  + "; ".join(f"job {row['job']}: {row.get('error')}" for row in failed[:5])
                  + f" (their logs: {sweep}/<job>/)", file=sys.stderr)
            raise SystemExit(1)
