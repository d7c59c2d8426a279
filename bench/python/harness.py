"""Shared by the CPython baselines in this directory.

Each script registers workloads: functions that run once and return one
figure (in the unit the Corral table uses for that row). A script runs in
one of two ways:

- by hand: ``python3 queues.py q1to1 --runs 5`` runs a warm-up and N runs and
  prints one JSON object ``{"workload": ..., "values": [...]}``;
- driven: ``python3 queues.py q1to1 --serve`` runs once per line read on
  stdin and answers each with one JSON number on stdout. The Rust bench
  (``host/benches/compare``) drives it that way so that CPython and Corral
  runs alternate and each ratio is taken run by run, on a machine whose
  noise changes from one second to the next.

A workload checks its own results (counts, checksums, exit codes) and raises
on any mismatch: a fast wrong answer is not a figure.
"""

import argparse
import json
import sys


def check(condition, what):
    """Fails the run loudly: the driver reports the message and no figure."""
    if not condition:
        raise AssertionError(what)


def main(workloads, configure=None):
    """Parses the command line and runs the named workload.

    ``workloads`` maps names to functions taking the parsed arguments;
    ``configure`` adds script-specific options to the parser.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=sorted(workloads))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serve", action="store_true")
    if configure:
        configure(parser)
    args = parser.parse_args()
    run = workloads[args.workload]
    if args.serve:
        for _ in sys.stdin:
            print(json.dumps(run(args)), flush=True)
        return
    run(args)  # warm-up
    values = [run(args) for _ in range(args.runs)]
    print(json.dumps({"workload": args.workload, "values": values}))
