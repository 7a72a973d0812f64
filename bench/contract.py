"""Contract bench: schemathesis against the live service, every contract check, the coverage,
fuzzing and stateful phases, a fixed seed and a time budget; prints the requests it generated and
the unique failures by check. The same command measured the figures before and after the API
contract work.

    python bench/contract.py [--max-time 120] [--seed 0] [--model house] [--report out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,negative_data_rejection,unsupported_method,"
    "allow_header_conformance"
)


def schemathesis(url: str, max_time: int, seed: int, report: Path, workers: int = 1) -> int:
    """Run `st run` against `url`; returns its exit code. The JSON report lands at `report`."""
    cmd = [
        str(Path(sys.executable).with_name("st")), "run", f"{url}/openapi.json",
        "--checks", CHECKS, "--phases", "coverage,fuzzing,stateful", "--seed", str(seed),
        "--max-time", str(max_time), "--workers", str(workers), "--no-color",
        "--suppress-health-check", "all", "--generation-database", "none",
        "--request-timeout", "30", "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def summarise(report: Path) -> tuple[int, Counter, list[str]]:
    """(test cases generated, unique failures by kind, one line per kind with its operations)."""
    data = json.loads(report.read_text())
    cases = int(data["test_cases"]["generated"])
    by_kind: Counter = Counter()
    lines = []
    for f in data.get("failures") or []:
        by_kind[f["title"]] += f["count"]
        lines.append(f"{f['title']} ({f['count']}): {', '.join(f['operations'])}")
    return cases, by_kind, lines


def main() -> None:
    from runtime.settings import Settings
    from service.runner import running

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="house")
    ap.add_argument("--max-time", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.load({}, model=args.model, data_dir=Path(tmp) / "data", demo=False)
        report = args.report or Path(tmp) / "report.json"
        with running(s) as url:
            httpx.post(f"{url}/collections", json={"name": "shop"}).raise_for_status()
            code = schemathesis(url, args.max_time, args.seed, report)
        requests, by_check, lines = summarise(report)
    print(f"schemathesis exit {code}; {requests} test cases; "
          f"{sum(by_check.values())} unique failures")  # fmt: skip
    for check, n in sorted(by_check.items()):
        print(f"  {check}: {n}")
    for line in lines:
        print("   -", line)


if __name__ == "__main__":
    main()
