"""MkDocs hooks: the benchmarks page rendered from the result records, and links to it from the docs.
Run MkDocs as `python -m mkdocs` from the repository root (as `make check` does) so that `benchmarks`
imports.

The docs link to `../BENCHMARKS.md`, which is right when they are read in the repository; in the site
that page is `benchmarks.md`, rendered from the same records (`benchmarks.results`) with links relative
to the site.
"""

from typing import Any

from mkdocs.structure.files import File, Files

from benchmarks import results

BENCHMARKS_PAGE = "benchmarks.md"


def on_files(files: Files, config: Any) -> Files:
    page = results.render(results.load(), decisions_link="decisions/index.md")
    files.append(File.generated(config, BENCHMARKS_PAGE, content=page))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    return markdown.replace("../BENCHMARKS.md", BENCHMARKS_PAGE)
