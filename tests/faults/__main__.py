"""``python -m tests.faults --scenario NAME|all [--cycles N] [--backend postgresql|sqlite] [--long]``.

Run from the repository root (the beats import this worktree's code through ``PYTHONPATH``).
Prints a Markdown table of the figures, then the details of each scenario; writes both to
``report.md`` in the output folder. Exits 1 when a target of issue 8 was missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import tempfile
import time
from pathlib import Path

from _pytest.outcomes import OutcomeException

from .analysis import Report
from .harness import Servers
from .scenarios import SCENARIOS, failed_targets, run_scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="all", help=f"one of {', '.join(SCENARIOS)}, or all (default)")
    parser.add_argument("--cycles", type=int, help="fault cycles (default: the long run's, or the short one's)")
    parser.add_argument("--short", action="store_true", help="the short settings the pytest suite uses")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), help="store (default: the scenario's)")
    parser.add_argument("--outage", type=float, help="seconds a broker/database outage lasts")
    parser.add_argument("--stall", type=float, help="seconds a stall or frozen link lasts")
    parser.add_argument("--lease-ttl", type=float, help="orchestra_lease_ttl given to the beats (default 10)")
    parser.add_argument("--seed", type=int, help="seed of the random waits")
    parser.add_argument("--out", type=Path, help="folder for logs and the report (default: a new temp folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every harness event")
    args = parser.parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so every beat we started is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s")

    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)} or all")
    out = args.out or Path(tempfile.mkdtemp(prefix="orchestra-faults-"))
    out.mkdir(parents=True, exist_ok=True)
    needs_postgres = any((args.backend or SCENARIOS[name].backend) == "postgresql" for name in names)

    reports: list[tuple[Report, list[str]]] = []
    errors: list[str] = []
    try:
        with Servers.started(postgres=needs_postgres) as servers:
            for name in names:
                scenario = SCENARIOS[name]
                settings = scenario.short if args.short else scenario.long
                changes = {
                    key: value
                    for key, value in (
                        ("cycles", args.cycles),
                        ("outage", args.outage),
                        ("stall", args.stall),
                        ("lease_ttl", args.lease_ttl),
                        ("seed", args.seed),
                    )
                    if value is not None
                }
                settings = dataclasses.replace(settings, **changes)
                print(f"== {name}: {scenario.title} ({settings})", file=sys.stderr, flush=True)
                started = time.monotonic()
                try:
                    report = run_scenario(scenario, servers, out / name, settings, args.backend)
                except Exception as error:  # a harness failure: say so, go on with the next scenario
                    logging.exception("%s: the run itself failed", name)
                    errors.append(f"{name}: the run failed: {error!r}")
                    continue
                failed = failed_targets(report, scenario, settings)
                reports.append((report, failed))
                print(f"   done in {time.monotonic() - started:.0f} s; missed: {failed or 'none'}", file=sys.stderr)
    except OutcomeException as skipped:  # a server binary is missing (tests.servers skips)
        print(f"cannot run: {skipped.msg}", file=sys.stderr)
        return 2

    text = render(reports)
    if errors:
        text += "\n\n" + "\n".join(f"- {error}" for error in errors)
    print(text)
    (out / "report.md").write_text(text + "\n")
    print(f"\nlogs and report: {out}", file=sys.stderr)
    return 1 if errors or any(failed for _, failed in reports) else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def render(reports: list[tuple[Report, list[str]]]) -> str:
    lines = [Report.HEADER]
    lines.extend(report.row() for report, _ in reports)
    for report, failed in reports:
        lines.append("")
        lines.append(report.details())
        lines.append(f"- targets missed: {'; '.join(failed) if failed else 'none'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
