"""The results table, as Markdown, exactly as the pipeline measured it."""

from __future__ import annotations


def _cell(row: dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if key in row else "-"


def results_markdown(
    rows: dict[str, dict], dataset: str, reference_n: int, k: int, dc_k: int = 5
) -> str:
    """A Markdown table with one row per sample set: n, FID, precision, recall, density,
    coverage, and (for generated sets) network evaluations per image and sampling time."""
    lines = [
        f"Dataset: `{dataset}`. Reference: its test set ({reference_n} images for FID; for",
        f"precision and recall (k = {k}) and density and coverage (k = {dc_k}), a seeded",
        "subset as large as each sample set). Features: the pipeline's classifier",
        "(penultimate layer). NFE: expert-network evaluations per image.",
        "",
        "| samples | n | FID | precision | recall | density | coverage | NFE | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
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
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
