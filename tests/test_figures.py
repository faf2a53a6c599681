import numpy as np

from mclcore.figures import image_grid
from mclcore.plots import (
    class_names,
    save_class_histograms,
    save_temporal_specialisation,
    save_trajectories,
)


def test_class_names_are_fashion_names_or_indices():
    assert class_names("fashion_mnist", 10)[9] == "Boot"
    assert class_names("mnist", 10) == [str(i) for i in range(10)]
    assert class_names("idx_folder", 3) == ["0", "1", "2"]


def test_image_grid_tiles_images_in_rows_with_padding():
    images = np.stack([np.full((2, 2), v, dtype=np.uint8) for v in (10, 20, 30)])
    grid = image_grid(images, columns=2, pad=1)
    assert grid.shape == (7, 7)
    assert grid[1, 1] == 10 and grid[1, 4] == 20 and grid[4, 1] == 30 and grid[4, 4] == 255


def test_class_histograms_are_written_as_png(tmp_path):
    shares = {"expert_0": np.array([0.5, 0.5, 0.0]), "expert_1": np.array([0.2, 0.3, 0.5])}
    save_class_histograms(shares, ["a", "b", "c"], tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_trajectory_and_temporal_figures_are_written_as_png(tmp_path):
    from PIL import Image

    rows = {"expert_0": np.zeros((3, 28, 28), np.uint8), "gated": np.ones((3, 28, 28), np.uint8)}
    save_trajectories(rows, [80.0, 1.0, 0.0], tmp_path / "t.png")
    levels = [80.0, 10.0, 1.0, 0.1]
    shares = np.array([[1, 0], [0.5, 0.5], [0, 1], [0, 1.0]])
    edges, rates = np.geomspace(0.01, 80.0, 4), np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    save_temporal_specialisation(levels, shares, edges, rates, tmp_path / "s.png", 256)
    for name in ("t.png", "s.png"):
        with Image.open(tmp_path / name) as picture:
            assert picture.format == "PNG" and picture.width > 300 and picture.height > 150


def test_level_bars_reach_half_way_to_their_neighbours_in_log_sigma():
    from mclcore.plots import _level_edges

    assert np.allclose(_level_edges([100.0, 10.0, 1.0]), 10 ** np.array([-0.5, 0.5, 1.5, 2.5]))
