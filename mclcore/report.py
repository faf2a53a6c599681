"""The results table, as Markdown, exactly as the pipeline measured it."""

from __future__ import annotations


def _cell(row: dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if key in row else "-"


def results_markdown(
    rows: dict[str, dict], dataset: str, reference_n: int, k: int, dc_k: int = 5
) -> str:
    """A Markdown table with one row per sample set: n, FID, precision, recall, density,
    coverage, and (for generated sets) network evaluations per image and sampling time;
    with an Inception FID column when the rows have one."""
    inception = any("inception_fid" in row for row in rows.values())
    lines = [
        f"Dataset: `{dataset}`. Reference: its test set ({reference_n} images for FID; for",
        f"precision and recall (k = {k}) and density and coverage (k = {dc_k}), a seeded",
        "subset as large as each sample set). Features: the pipeline's classifier",
        "(penultimate layer). NFE: expert-network evaluations per image.",
        (
            "Inception FID: the standard TF-ported Inception-v3 pool features, same reference."
            if inception
            else "Inception FID: not computed (no Inception weights here; see the README)."
        ),
        "",
        "| samples | n | FID | precision | recall | density | coverage | NFE | seconds |"
        + (" Inception FID |" if inception else ""),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        + (" ---: |" if inception else ""),
    ]
    for name, row in rows.items():
        cells = [
            str(row["n"]),
            _cell(row, "fid", ".2f"),
            _cell(row, "precision", ".3f"),
            _cell(row, "recall", ".3f"),
            _cell(row, "density", ".3f"),
            _cell(row, "coverage", ".3f"),
            _cell(row, "nfe_per_image", "d"),
            _cell(row, "sample_seconds", ".0f"),
            *([_cell(row, "inception_fid", ".2f")] if inception else []),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


RESULTS_START = "<!-- metrics/results.md, written here by the evaluate stage: do not edit -->"
RESULTS_END = "<!-- end of metrics/results.md -->"


def results_block(readme: str) -> str:
    """The text between the README's results markers."""
    start, end = readme.find(RESULTS_START), readme.find(RESULTS_END)
    if start < 0 or end < start:
        raise ValueError(
            "the README has no results markers; put the lines\n"
            f"{RESULTS_START}\n{RESULTS_END}\nwhere the results table should go"
        )
    return readme[start + len(RESULTS_START) + 1 : end]


def with_results(readme: str, table: str) -> str:
    """`readme` with the text between its results markers replaced by `table`."""
    old = results_block(readme)
    head = readme[: readme.find(RESULTS_START) + len(RESULTS_START) + 1]
    return head + table + readme[len(head) + len(old) :]
