"""The findings page quotes the recipe runner's reports, never a hand-typed table.

A page marks each quotation with a pair of HTML comments; everything between them is generated from the report
named in the opening comment (a path relative to the page), so a table on the page is always the one the runner
wrote::

    <!-- report ../results/payoff-cpu/REPORT.md: Floors | What the data says -->
    (the report's arms table, then its "Floors" and "What the data says" sections, filled in here)
    <!-- end report -->

The arms table (the first table of the report) always comes first; the sections named after the colon follow,
each under its name in bold, with their tables and verdict lines unchanged (the report's prose and plots are
left to the page). ``python -m hbert.experiments.findings`` rewrites the quotations of ``docs/findings.md`` after
a recipe has been rerun; ``--check`` only says whether the page is up to date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..files import write_atomic

BLOCK = re.compile(
    r"(?P<open><!-- report (?P<path>\S+?)(?::(?P<sections>[^>]*?))? -->\n)(?P<body>.*?)(?P<close><!-- end report -->)",
    re.S,
)
_HEADING = re.compile(r"^## (.+)$", re.M)


class FindingsError(ValueError):
    pass


def report_sections(text: str) -> dict[str, str]:
    """``{"": the part before the first "## " heading, name: body}`` of a runner's ``REPORT.md``."""
    parts = _HEADING.split(text)
    return {"": parts[0], **{name.strip(): body for name, body in zip(parts[1::2], parts[2::2])}}


def _quoted_lines(body: str) -> str:
    """The tables and verdict lines of a section, as written; prose, plots and blank runs dropped."""
    blocks, current = [], []
    for line in body.splitlines():
        if line.startswith(("|", "- ")):
            current.append(line)
        elif current:
            blocks.append("\n".join(current))
            current = []
    if current:
        blocks.append("\n".join(current))
    return "\n\n".join(blocks)


def quote(report: Path, sections: list[str]) -> str:
    """The quotation of ``report``: its arms table, then each named section under its name in bold."""
    if not report.is_file():
        raise FindingsError(
            f"{report} does not exist (a findings quotation names a REPORT.md written by hbert compare)"
        )
    found = report_sections(report.read_text(encoding="utf-8"))
    arms = _quoted_lines("\n".join(line for line in found[""].splitlines() if line.startswith("|")))
    if not arms:
        raise FindingsError(f"{report} has no arms table")
    parts = [arms]
    for name in sections:
        if name not in found:
            named = ", ".join(repr(n) for n in found if n) or "none"
            raise FindingsError(f"{report} has no section {name!r}; its sections: {named}")
        parts += [f"**{name}**", _quoted_lines(found[name])]
    return "\n\n".join(parts) + "\n"


def render(page: Path) -> str:
    """The page's text with every quotation regenerated from its report."""
    text = page.read_text(encoding="utf-8")

    def fill(match: re.Match) -> str:
        names = [s.strip() for s in (match["sections"] or "").split("|") if s.strip()]
        return match["open"] + quote(page.parent / match["path"], names) + match["close"]

    return BLOCK.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hbert.experiments.findings", description="Regenerate the report quotations of a page."
    )
    parser.add_argument("pages", nargs="*", default=["docs/findings.md"], help="pages (default docs/findings.md)")
    parser.add_argument("--check", action="store_true", help="only say whether the pages are up to date")
    args = parser.parse_args(argv)
    stale = []
    for name in args.pages:
        page = Path(name)
        try:
            if not page.is_file():
                raise FindingsError(f"{page} does not exist")
            text = render(page)
        except FindingsError as err:
            print(f"findings: error: {err}", file=sys.stderr)
            return 2
        if text != page.read_text(encoding="utf-8"):
            stale.append(name)
            if not args.check:
                write_atomic(page, text)
    if args.check and stale:
        print(f"findings: {', '.join(stale)} quote(s) reports that have changed; run python -m "
              f"hbert.experiments.findings {' '.join(stale)}", file=sys.stderr)  # fmt: skip
        return 1
    for name in stale:
        print(f"findings: regenerated {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
