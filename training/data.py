"""Datasets as uint8 tensors in memory, and torch-only augmentation (torchvision does not install beside CPU torch here).

Images are (N, C, H, W) uint8: the network sees raw pixel values, as the FPGA does.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import FracskipError
from ..runtime.host import read_idx

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def default_fashion_mnist_dir() -> Path:
    """$FRACSKIP_FASHION_MNIST, Debian's install location, or the copy `make dataset` unpacks without root."""
    env = os.environ.get("FRACSKIP_FASHION_MNIST")
    if env:
        return Path(env)
    local = Path(__file__).resolve().parent.parent / ".data" / DEBIAN_FASHION_MNIST.relative_to("/")
    return DEBIAN_FASHION_MNIST if DEBIAN_FASHION_MNIST.is_dir() or not local.is_dir() else local
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DATASETS = ("fashion-mnist", "cifar10", "synthetic")


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> "Split":
        return self if n is None else Split(self.images[:n], self.labels[:n])


def load(dataset: str, split: str, data_dir: str | Path | None = None, limit: int | None = None) -> Split:
    """Load ``split`` ("train" or "test") of a dataset: fashion-mnist, cifar10 or synthetic."""
    if split not in ("train", "test"):
        raise FracskipError(f"split must be 'train' or 'test', got {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise FracskipError(f"the image limit must be a positive whole number, got {limit!r}")
    if dataset == "fashion-mnist":
        s = _fashion_mnist(Path(data_dir) if data_dir else default_fashion_mnist_dir(), split)
    elif dataset == "cifar10":
        if data_dir is None:
            raise FracskipError("CIFAR-10 is not on any package registry here: pass --data DIR, the folder of the "
                                "python version (data_batch_1..5, test_batch), e.g. cifar-10-batches-py")
        s = _cifar10(Path(data_dir), split)
    elif dataset == "synthetic":
        s = synthetic(n=limit or (512 if split == "train" else 256), seed=0 if split == "train" else 1)
    else:
        raise FracskipError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if not len(s):
        raise FracskipError(f"the {split} split of {dataset} in {data_dir or 'its default folder'} holds no images; "
                            "pass --data DIR with a complete copy")
    return s.subset(limit)


def require_fit(images: torch.Tensor, cfg, what: str) -> None:
    """Refuse images (N, C, H, W) that a model of ``cfg`` (its ``in_channels`` and ``image_size``) does not take:
    another dataset's images would otherwise fail deep in a convolution, or be scored without a word."""
    want = (cfg.in_channels, cfg.image_size, cfg.image_size)
    if tuple(images.shape[1:]) != want:
        got = "x".join(map(str, images.shape[1:]))
        raise FracskipError(f"{what} takes {'x'.join(map(str, want))} images (channels x height x width); these are "
                            f"{got}: pass the dataset it was trained on (--dataset, --data)")


def _find(folder: Path, name: str) -> Path:
    for cand in (folder / name, folder / name.removesuffix(".gz")):
        if cand.exists():
            return cand
    raise FracskipError(
        f"Fashion-MNIST file {name} not found in {folder}. Install Debian's package (apt-get install "
        f"dataset-fashion-mnist, which `make dataset` does) or pass --data DIR with the four IDX files.")


def _fashion_mnist(folder: Path, split: str) -> Split:
    if not folder.is_dir():
        raise FracskipError(f"data folder {folder} does not exist. Install Debian's dataset-fashion-mnist "
                            f"(`make dataset` does) or pass --data DIR with the four IDX files.")
    img_name, lbl_name = FASHION_MNIST_FILES[split]
    images = read_idx(_find(folder, img_name))
    labels = read_idx(_find(folder, lbl_name))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise FracskipError(f"Fashion-MNIST files in {folder} do not match: {images.shape} images, {labels.shape} labels")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise FracskipError(f"{folder / lbl_name}: label {labels.max()} is not a Fashion-MNIST class (0..9)")
    return Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


class _CifarUnpickler(pickle.Unpickler):
    """CIFAR-10's python batches are pickled dicts of bytes, lists of ints and one uint8 numpy array. Only the
    globals that rebuild such an array are admitted; any other (os.system, builtins.eval, ...) is refused
    before it is looked up, so that a crafted batch file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes pickled by Python 3 at protocol 2
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def _read_cifar_batch(p: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(p, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise FracskipError(f"{p} is not a CIFAR-10 python batch ({e}); nothing from it was run. Use the "
                            "python version of CIFAR-10 (cifar-10-batches-py)") from e
    except Exception as e:  # noqa: BLE001 - truncated or garbled pickles raise many types
        raise FracskipError(f"{p} is not a readable CIFAR-10 python batch ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise FracskipError(f"{p} is not a CIFAR-10 python batch (expected a dict with b'data' and b'labels')")
    data, labels = d[b"data"], d[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise FracskipError(f"{p}: b'data' must be a uint8 array of shape (N, 3072)")
    if not isinstance(labels, list) or len(labels) != len(data) or \
            not all(isinstance(v, int) and 0 <= v < 10 for v in labels):
        raise FracskipError(f"{p}: b'labels' must be {len(data)} class numbers 0..9")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _cifar10(folder: Path, split: str) -> Split:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    if not folder.is_dir():
        raise FracskipError(f"CIFAR-10 folder {folder} does not exist: --data must be the folder of the python "
                            "version holding data_batch_1..5 and test_batch")
    xs, ys = [], []
    for n in names:
        p = folder / n
        if not p.is_file():
            raise FracskipError(f"CIFAR-10 batch {p} not found: --data must be the folder of the python "
                                f"version holding data_batch_1..5 and test_batch")
        x, y = _read_cifar_batch(p)
        xs.append(x)
        ys.append(y)
    return Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))


def synthetic(n: int, channels: int = 1, size: int = 28, classes: int = 10, seed: int = 0) -> Split:
    """A learnable toy set for unit tests: one fixed random template per class plus noise."""
    g = torch.Generator().manual_seed(1234)
    templates = torch.rand(classes, channels, size, size, generator=g) * 255
    g.manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = (templates[labels] + 50 * torch.randn(n, channels, size, size, generator=g)).clamp(0, 255).round()
    return Split(images.to(torch.uint8), labels)


def augment(images: torch.Tensor, pad: int = 2, flip: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop after zero padding, and random horizontal flip, on a uint8 batch."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # (n, h)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # (n, w)
    out = padded[torch.arange(n).view(n, 1, 1), :, rows.view(n, h, 1), cols.view(n, 1, w)]  # (n, h, w, C)
    out = out.permute(0, 3, 1, 2)
    if flip:
        f = torch.rand(n, generator=generator) < 0.5
        out[f] = out[f].flip(-1)
    return out.contiguous()


def batches(split: Split, batch_size: int, shuffle: bool, generator: torch.Generator | None = None,
            rank: int = 0, world: int = 1):
    """Yield (images, labels) batches; with ``world`` > 1 each rank sees its own shard."""
    order = torch.randperm(len(split), generator=generator) if shuffle else torch.arange(len(split))
    order = order[rank::world]
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield split.images[idx], split.labels[idx]
