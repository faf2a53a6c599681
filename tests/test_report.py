from pathlib import Path

import pytest

from mclcore.report import RESULTS_END, RESULTS_START, results_block, results_markdown, with_results

REPO = Path(__file__).parents[1]


def test_the_results_table_replaces_only_the_text_between_the_markers():
    readme = f"# Title\n\nintro\n{RESULTS_START}\nold table\n{RESULTS_END}\n\nafter\n"
    updated = with_results(readme, "| new |\n")
    assert updated == f"# Title\n\nintro\n{RESULTS_START}\n| new |\n{RESULTS_END}\n\nafter\n"
    assert results_block(updated) == "| new |\n"
    assert with_results(updated, "| new |\n") == updated


def test_a_readme_without_markers_is_named_with_the_fix():
    with pytest.raises(ValueError, match="no results markers; put the lines"):
        with_results("# Title\n", "| table |\n")


def test_the_committed_readme_shows_the_committed_results_file_unchanged():
    readme = (REPO / "README.md").read_text()
    assert results_block(readme) == (REPO / "metrics/results.md").read_text()


def test_an_inception_column_appears_only_when_a_row_has_one():
    rows = {"baseline": {"n": 10, "fid": 1.0}, "gated": {"n": 10, "fid": 2.0}}
    assert "Inception FID |" not in results_markdown(rows, "mnist", 100, 3)
    assert "not computed" in results_markdown(rows, "mnist", 100, 3)
    rows["gated"]["inception_fid"] = 12.345
    table = results_markdown(rows, "mnist", 100, 3)
    assert "| Inception FID |" in table and "| 12.35 |" in table and "| - |" in table
