"""The LeNet-5-style classifier that labels images and defines the evaluation features."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F
from mclcore.progress import progress

log = logging.getLogger(__name__)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU, max-pooling and wider layers.

    Two 5x5 convolutions (32, 64 channels) with 2x2 pooling, then 256- and 128-unit
    layers. `features` returns the 128-d penultimate activations used for FID.
    """

    feature_dim = 128

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5)
        self.fc1 = nn.Linear(64 * 5 * 5, 256)
        self.fc2 = nn.Linear(256, self.feature_dim)
        self.head = nn.Linear(self.feature_dim, num_classes)
        self.dropout = nn.Dropout(0.25)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 14 x 14
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # 5 x 5
        h = F.relu(self.fc1(self.dropout(h.flatten(1))))
        return F.relu(self.fc2(self.dropout(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    log_metrics=None,
    show_progress: bool = True,
    device: torch.device | str = "cpu",
) -> LeNet5:
    """Train on images in [-1, 1] ([N, 1, 28, 28]) with Adam and a cosine learning rate."""
    torch.manual_seed(seed)
    model = LeNet5(int(labels.max()) + 1).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = len(images) // batch_size
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        bar = progress(
            range(steps_per_epoch), desc=f"classifier epoch {epoch + 1}", disable=not show_progress
        )
        for i in bar:
            ids = order[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(model(images[ids].to(device)), labels[ids].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if log_metrics and step % 50 == 0:
                log_metrics({"train_loss": loss.item()}, step)
        log.info("classifier epoch %d done", epoch + 1)
    return model.eval()


@torch.no_grad()
def predict(model: LeNet5, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Class indices for images in [-1, 1], computed on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(b.to(device)).argmax(1).cpu() for b in images.split(batch_size)])


@torch.no_grad()
def extract_features(model: LeNet5, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate-layer features for images in [-1, 1], float64 for the statistics."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [model.features(b.to(device)).cpu() for b in images.split(batch_size)]
    ).double()


def accuracy(model: LeNet5, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images whose predicted class is the label."""
    return (predict(model, images) == labels).double().mean().item()


CLASSIFIER_KIND = "mcl-diffusion/classifier"


def save_classifier(model: LeNet5, path) -> None:
    """Save the classifier's weights and class count, atomically."""
    from mclcore.files import torch_save

    state = {"kind": CLASSIFIER_KIND, "num_classes": model.head.out_features}
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch_save({**state, "state_dict": weights}, path)


def load_classifier(path, device: torch.device | str = "cpu") -> LeNet5:
    """Rebuild the classifier saved at `path`, in eval mode, on `device`."""
    from mclcore.checkpoints import load_checkpoint

    state = load_checkpoint(path, CLASSIFIER_KIND)
    model = LeNet5(state["num_classes"])
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval().requires_grad_(False)
