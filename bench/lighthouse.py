"""Lighthouse's scores for the storefront: the catalogue and an item page, for performance, accessibility
and best practices.

    make lighthouse      (= .venv/bin/python bench/lighthouse.py)
    .venv/bin/python bench/lighthouse.py [--url http://127.0.0.1:8080/] [--runs 3] [--no-write]

Without --url it starts a stack of its own as the end-to-end tests do (tests/e2e/stack.py: the repository's
supervisord.conf on free ports) on a scratch database with the demo seed, and stops it afterwards; with
--url it scores the stack already running there (`make run`). Lighthouse is the version that
tools/lighthouse/package-lock.json pins, driving Debian's Chromium headless with its default settings (a
mid-range phone on a slow 4G link, simulated). A score moves from run to run on a busy machine, so each page
is scored --runs times and the median is kept. It prints the scores and writes them to docs/lighthouse.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import bench_environment, drop_database, fresh_database  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# As the browser tests run it (tests/e2e/test_storefront.py): headless, as root, nothing fetched on its own.
CHROMIUM_FLAGS = ("--headless --no-sandbox --disable-gpu --disable-background-networking "
                  "--disable-component-update --disable-sync --no-first-run")
TOOL = ROOT / "tools" / "lighthouse"
CLI = TOOL / "node_modules" / "lighthouse" / "cli" / "index.js"
CATEGORIES = ("performance", "accessibility", "best-practices")
GOAL = 95
PASS = 0.9  # an audit scoring below this is named as one that cost points (Lighthouse's own green)
DB_NAME = "toko_lighthouse"
DOC = ROOT / "docs" / "lighthouse.md"


def lighthouse_version() -> str:
    return json.loads((TOOL / "node_modules" / "lighthouse" / "package.json").read_text())["version"]


def score(url: str) -> dict[str, int]:
    """One Lighthouse run of `url`: each category's score out of 100."""
    with tempfile.TemporaryDirectory(prefix="toko-lighthouse-") as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run(
            ["node", str(CLI), url, "--output=json", f"--output-path={report}", "--quiet",
             f"--only-categories={','.join(CATEGORIES)}", f"--chrome-flags={CHROMIUM_FLAGS}"],
            check=True, env={**os.environ, "CHROME_PATH": CHROMIUM}, cwd=scratch, timeout=300)
        result = json.loads(report.read_text())
    if result.get("runtimeError"):
        raise RuntimeError(f"Lighthouse could not score {url}: {result['runtimeError']}")
    scores = {name: round(100 * result["categories"][name]["score"]) for name in CATEGORIES}
    # What cost points: each weighed audit of these categories that did not pass.
    lost = sorted({result["audits"][ref["id"]]["title"] for name in CATEGORIES
                   for ref in result["categories"][name]["auditRefs"]
                   if ref["weight"] and (result["audits"][ref["id"]]["score"] or 0) < PASS})
    return {**scores, "lost": lost}


def median_scores(url: str, runs: int) -> dict:
    scores = [score(url) for _ in range(runs)]
    return {**{name: int(statistics.median(s[name] for s in scores)) for name in CATEGORIES},
            "lost": sorted({title for s in scores for title in s["lost"]})}


def first_item(origin: str) -> int:
    """An item of the catalogue that has a category, so its page shows more of the same."""
    import requests

    items = requests.get(f"{origin}/v2/items", params={"limit": 50}, timeout=10).json()["data"]
    with_category = [item for item in items if item["category"]]
    if not with_category:
        raise SystemExit(f"{origin} has no item in a category to score: run `toko seed-demo` there")
    return with_category[0]["id"]


def measure(origin: str, runs: int) -> dict[str, tuple[str, dict]]:
    pages = {"catalogue": f"{origin}/", "item page": f"{origin}/#/items/{first_item(origin)}"}
    return {name: (url, median_scores(url, runs)) for name, url in pages.items()}


def own_stack(runs: int) -> dict[str, tuple[str, dict]]:
    """Scores against a stack of its own: a scratch database with the demo seed, the stack on free ports."""
    env = bench_environment(DB_NAME)
    from toko.stack import make_stack

    fresh_database(env.db_name)
    try:
        subprocess.run([str(ROOT / ".venv/bin/toko"), "seed-demo"], check=True, env=os.environ.copy(),
                       stdout=subprocess.DEVNULL)
        with make_stack(Path(tempfile.mkdtemp(prefix="toko-lighthouse-stack-")), env.database_url) as stack:
            return measure(stack.gateway_url(), runs)
    finally:
        drop_database(env.db_name)


def table(results: dict[str, tuple[str, dict]]) -> str:
    rows = [f"| {name} | `{url.split('/', 3)[-1] or '/'}` | "
            + " | ".join(str(scores[c]) for c in CATEGORIES) + " |"
            for name, (url, scores) in results.items()]
    return "\n".join(["| page | address | performance | accessibility | best practices |",
                      "|---|---|---|---|---|", *rows])


def write_doc(results, runs: int) -> None:
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    DOC.write_text(f"""# Lighthouse scores of the storefront

Written by `make lighthouse` (`bench/lighthouse.py`); the goal is {GOAL} or more in each column.

{table(results)}

Lighthouse {lighthouse_version()} (pinned in `tools/lighthouse/package-lock.json`), {chromium}, headless,
with Lighthouse's default settings: a mid-range phone on a slow 4G link, simulated. Each score is the median
of {runs} runs, taken {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on a stack with the demo seed.
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the running stack's gateway, e.g. http://127.0.0.1:8080/ "
                                      "(default: start a stack of its own)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print the scores only, leave docs/ alone")
    args = parser.parse_args()
    if not CLI.exists():
        raise SystemExit(f"Lighthouse is not installed: run `npm ci --prefix {TOOL.relative_to(ROOT)}`")
    results = measure(args.url.rstrip("/"), args.runs) if args.url else own_stack(args.runs)
    for name, (url, scores) in results.items():
        print(f"{name:<10} {url}: " + ", ".join(f"{c.replace('-', ' ')} {scores[c]}" for c in CATEGORIES))
        if scores["lost"]:
            print(f"{'':<10} did not pass: {'; '.join(scores['lost'])}")
    if not args.no_write:
        write_doc(results, args.runs)
        print(f"written to {DOC.relative_to(ROOT)}")
    low = [f"{name} {c}" for name, (_, scores) in results.items() for c in CATEGORIES if scores[c] < GOAL]
    if low:
        print(f"below {GOAL}: {', '.join(low)}")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
