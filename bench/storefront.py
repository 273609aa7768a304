"""The storefront's first page through the gateway, in Debian's Chromium: what it weighs, how long it takes.

    .venv/bin/python bench/storefront.py [--url http://127.0.0.1:8080/] [--runs 10]

Each cold run is a fresh browser profile (empty cache); each warm run reloads the page in the profile of
the previous load, so every file is revalidated (304). It prints the median and worst of: the time to
DOMContentLoaded, to the load event, and to the catalogue's first item on screen, and the bytes of the
first page's own files (the HTML, the stylesheet and the modules: JS and CSS alone are the budget,
100 KB) as sent on the wire and once decoded.
"""
from __future__ import annotations

import argparse
import statistics
import sys

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

# Timings and sizes of the page's own files, from the browser's Navigation and Resource Timing entries.
MEASURE = """() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const files = [nav, ...performance.getEntriesByType('resource')]
        .filter((e) => new URL(e.name).pathname.match(/^\\/($|index\\.html|app\\.css|favicon\\.svg|js\\/)/));
    return {
        dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
        files: files.map((e) => ({ path: new URL(e.name).pathname, wire: e.encodedBodySize,
                                   decoded: e.decodedBodySize, transfer: e.transferSize })),
    };
}"""


def _first_item(page) -> float:
    # Not the grey shapes the page shows while it loads: a real item.
    page.wait_for_selector(".grid .card:not(.skeleton)")
    return page.evaluate("() => performance.now()")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080/")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    cold, warm = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(args.runs):
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.goto(args.url)
            cold.append({**page.evaluate(MEASURE), "item": _first_item(page)})
            page.reload()
            warm.append({**page.evaluate(MEASURE), "item": _first_item(page)})
            context.close()
        browser.close()

    def line(name: str, runs: list[dict], key: str) -> str:
        values = [run[key] for run in runs]
        return f"  {name:<28} median {statistics.median(values):7.1f} ms   worst {max(values):7.1f} ms"

    files = {f["path"]: f for f in cold[-1]["files"]}
    code = [f for path, f in files.items() if path.endswith((".js", ".css"))]
    print(f"{args.url}: {args.runs} cold loads (empty cache) and {args.runs} warm reloads (304s)")
    for label, runs in (("cold", cold), ("warm", warm)):
        print(f"{label}:")
        print(line("DOMContentLoaded", runs, "dcl"))
        print(line("load event", runs, "load"))
        print(line("first catalogue item shown", runs, "item"))
    print("first page's files (bytes on the wire / decoded):")
    for path, f in sorted(files.items()):
        print(f"  {path:<20} {f['wire']:>7} / {f['decoded']:>7}")
    print(f"  JS + CSS: {sum(f['wire'] for f in code)} bytes on the wire, {sum(f['decoded'] for f in code)} "
          f"decoded, in {len(code)} files (budget 102400)")
    warm_transfer = sum(f["transfer"] for f in warm[-1]["files"])
    print(f"  a warm reload transfers {warm_transfer} bytes (headers of 304s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
