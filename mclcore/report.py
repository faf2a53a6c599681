"""The results table, as Markdown, exactly as the pipeline measured it."""

from __future__ import annotations


def results_markdown(rows: dict[str, dict], dataset: str, reference_n: int, k: int) -> str:
    """A Markdown table with one row per sample set: n, FID, precision and recall."""
    lines = [
        f"Dataset: `{dataset}`. Reference: its test set ({reference_n} images for FID; for",
        f"precision and recall, k = {k}, a seeded subset as large as each sample set).",
        "Features: the pipeline's classifier (penultimate layer).",
        "",
        "| samples | n | FID | precision | recall |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['n']} | {row['fid']:.2f} | {row['precision']:.3f} "
            f"| {row['recall']:.3f} |"
        )
    return "\n".join(lines) + "\n"
