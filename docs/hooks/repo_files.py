"""MkDocs hook: the repository folders the pages link to become part of the site.

A page links a report as ``../results/NAME/REPORT.md``: right when the Markdown is read in the repository (docs/
beside results/), and turned here into ``results/NAME/REPORT.md`` of the built site, whose files include those
folders. A link to a file that does not exist still fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

# folder: the files it contributes (a recipe's report, tables and plots, not the checkpoints of its runs)
MOUNTED = {"results": "*/*", "benchmarks": "*.md", "recipes": "*.yaml", "configs": "**/*.yaml"}
_LINK = re.compile(r"(\]\()\.\./(?=(?:{})/)".format("|".join(MOUNTED)))


def on_files(files, config):
    root = Path(config["config_file_path"]).parent
    for folder, pattern in MOUNTED.items():
        for path in sorted((root / folder).glob(pattern)):
            if path.is_file():
                rel = path.relative_to(root).as_posix()
                files.append(
                    File(
                        rel,
                        str(root),
                        config["site_dir"],
                        config["use_directory_urls"],
                        inclusion=InclusionLevel.NOT_IN_NAV,
                    )
                )
    return files


def on_page_markdown(markdown, page, config, files):
    if "/" in page.file.src_uri:  # a mounted report (its links are its own), or a page in a docs/ subfolder
        return markdown
    return _LINK.sub(r"\1", markdown)
