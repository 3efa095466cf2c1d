"""Training throughput: aelib's trainer vs the common tutorial loop.

Trains the S1 reference model (784-256-64-256-784, ReLU code, MSE, Adam lr
1e-3, batch 128) twice in this process on the same training images for the
same number of epochs from the same initial weights:

* baseline: the loop of most tutorials, a torchvision dataset with
  `ToTensor` (a `TensorDataset` for the digits, which come as arrays) fed by
  `DataLoader(batch_size=128, shuffle=True)`;
* aelib: `aelib.train.fit`, data held as one tensor on the device, batches as
  index slices, fused Adam.

Prints samples per second and test MSE of both, then `ratio: X.XX` last
(aelib samples/s divided by baseline samples/s). A benchmark, not a test:
it is run by `make bench`, never by CI. Settings: AELIB_DATASET (digits or
mnist), AELIB_DATA_DIR, AELIB_DEVICE, and the flags below.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from aelib import data, losses, metrics, models, runtime, train


def tutorial_loader(dataset: data.Dataset, root, batch_size: int, seed: int) -> DataLoader:
    """The training images as the tutorials load them (per-sample ToTensor for MNIST-like sets)."""
    generator = torch.Generator().manual_seed(seed)
    if dataset.name == "digits":
        base = TensorDataset(dataset.x_train, dataset.y_train)
    else:
        import torchvision.datasets as tvd
        from torchvision.transforms import ToTensor

        cls = getattr(tvd, data.TORCHVISION_CLASSES[dataset.name])
        full = cls(str(root), train=True, download=False, transform=ToTensor())
        keep, _ = data.stratified_split(full.targets, data.VAL_FRACTION)  # aelib's training split
        base = Subset(full, keep.tolist())
    return DataLoader(base, batch_size=batch_size, shuffle=True, generator=generator)


def train_tutorial(model: nn.Module, loader: DataLoader, epochs: int, lr: float, device) -> None:
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.MSELoss()
    for _ in range(epochs):
        for x, _ in loader:
            x = x.to(device)
            x_hat = model(x).x_hat
            loss = criterion(x_hat, x)
            opt.zero_grad()
            loss.backward()
            opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for both runs (default: 10 on MNIST-like data, 60 on the small digits)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = runtime.get_device()
    dataset = data.load()
    epochs = args.epochs or (60 if dataset.name == "digits" else 10)
    x_test = dataset.x_test.to(device)
    n = len(dataset.x_train)
    print(f"model S1 ({models.count_parameters(models.reference_s1()):,} parameters), {epochs} epochs, "
          f"batch {args.batch_size}, Adam lr {args.lr:g}, device {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, {platform.machine()}")

    loader = tutorial_loader(dataset, runtime.data_dir(), args.batch_size, args.seed)
    objective = losses.reconstruction_objective("mse")
    # Warm up both code paths once (first-call allocations, kernel selection).
    train_tutorial(models.reference_s1(), loader, 1, args.lr, device)
    train.fit(models.reference_s1(), dataset.x_train, objective, num_epochs=1,
              batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=device, progress=False)

    results = {}
    for name in ("baseline", "aelib"):
        torch.manual_seed(args.seed)
        model = models.reference_s1()  # identical initial weights for both runs
        runtime.synchronize(device)
        tic = time.perf_counter()
        if name == "baseline":
            train_tutorial(model, loader, epochs, args.lr, device)
        else:
            train.fit(model, dataset.x_train, objective, num_epochs=epochs, batch_size=args.batch_size,
                      lr=args.lr, seed=args.seed, device=device, progress=False)
        runtime.synchronize(device)
        seconds = time.perf_counter() - tic
        results[name] = (epochs * n / seconds, metrics.reconstruction_error(model.to(device), x_test))

    labels = {"baseline": "tutorial loop (DataLoader, per-batch copies)",
              "aelib": "aelib.train.fit (index slices on device, fused Adam)"}
    for name, (rate, mse) in results.items():
        print(f"{labels[name]:<55} {rate:10,.0f} samples/s   test MSE {mse:.5f}")
    base_mse, ours_mse = results["baseline"][1], results["aelib"][1]
    diff = (ours_mse - base_mse) / base_mse
    print(f"test MSE of aelib relative to baseline: {diff:+.2%} "
          f"({'within' if abs(diff) <= 0.02 else 'OUTSIDE'} the 2% tolerance)")
    print(f"ratio: {results['aelib'][0] / results['baseline'][0]:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("AELIB_PROGRESS", "0")
    main()
