"""Convolutional training on the CPU: channels-last weights (what `train.fit` does) vs the default layout.

Trains chapter 1's convolutional autoencoder (`ConvConfig(latent_dim=32, channels=(8, 16))`,
MSE, Adam lr 1e-3, batch 128) twice in this process from the same initial weights on the same
training images for the same number of steps: once with `aelib.train.fit` as it is (on the
CPU it trains 4-d weights in channels-last layout) and once with that layout switched off
(the baseline). Prints steps per second and the test MSE of both, then `ratio: X.XX` last
(channels-last steps/s divided by baseline steps/s). On other devices `fit` leaves the layout
alone and the ratio is about 1. A benchmark, not a test: run by `make bench`, never by CI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch

from aelib import data, losses, metrics, models, runtime, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = runtime.get_device()
    dataset = data.load()
    x = dataset.x_train[: args.steps * 128]  # one epoch of `steps` batches
    while len(x) < args.steps * 128:  # a small dataset: repeat it
        x = torch.cat([x, x])[: args.steps * 128]
    objective = losses.reconstruction_objective("mse")
    config = models.ConvConfig(latent_dim=32, channels=(8, 16))
    print(f"conv AE ({models.count_parameters(models.from_config(config, seed=0)):,} parameters), "
          f"{args.steps} steps of batch 128, device {device}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    fast_layout = train.fast_layout
    results = {}
    for name in ("warm-up baseline", "warm-up", "baseline", "channels-last"):
        train.fast_layout = (lambda model, dev: contextlib.nullcontext(model)) \
            if "baseline" in name else fast_layout
        model = models.from_config(config, seed=args.seed)
        steps = 20 if name.startswith("warm-up") else args.steps
        runtime.synchronize(device)
        tic = time.perf_counter()
        train.fit(model, x[: steps * 128], objective, num_epochs=1, batch_size=128,
                  seed=args.seed, device=device, progress=False)
        runtime.synchronize(device)
        results[name] = (steps / (time.perf_counter() - tic),
                         metrics.reconstruction_error(model, dataset.x_test.to(device)))
    train.fast_layout = fast_layout
    for name in ("baseline", "channels-last"):
        rate, mse = results[name]
        print(f"{name:<15} {rate:8.1f} steps/s   test MSE {mse:.5f}")
    print(f"ratio: {results['channels-last'][0] / results['baseline'][0]:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("AELIB_PROGRESS", "0")
    main()
