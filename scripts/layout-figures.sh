#!/usr/bin/env bash
# The layout figures the README's "Layout" section records, measured from the sources:
#
#   bash scripts/layout-figures.sh
#
# Prints the non-test lines of Rust per crate, the largest non-test source files, and the
# test binaries each crate links. "Non-test" leaves out a file's trailing inline
# `#[cfg(test)] mod tests` block and everything under tests/ and benches/: the figure that
# says whether a file still holds one idea (the layout keeps every one under about 800).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
python3 - <<'PY'
import pathlib, re

CRATES = ["core", "verifier-wasm", "app", "http", "store-local", "store-aws", "testkit",
          "server", "lambdas", "admin-ui"]

def non_test_lines(path):
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r"\s*mod tests\b", lines[i + 1]):
            return i
    return len(lines)

def is_test_file(path):
    return path.name == "tests.rs" or "tests" in path.parent.parts[-1:]

files = []
print(f"{'crate':<15}{'non-test lines':>15}{'files':>7}{'test binaries':>15}")
total = 0
for crate in CRATES:
    src = [p for p in pathlib.Path(crate, "src").rglob("*.rs") if not is_test_file(p)]
    counted = [(non_test_lines(p), str(p)) for p in src]
    files += counted
    lines = sum(n for n, _ in counted)
    total += lines
    tests = pathlib.Path(crate, "tests")
    binaries = sum(1 for p in tests.glob("*.rs")) + sum(1 for p in tests.glob("*/main.rs")) if tests.exists() else 0
    print(f"{crate:<15}{lines:>15,}{len(counted):>7}{binaries:>15}")
print(f"{'total':<15}{total:>15,}")
print("\nlargest non-test source files:")
for n, p in sorted(files, reverse=True)[:10]:
    print(f"{n:>7,}  {p}")
PY
