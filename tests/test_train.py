import pytest
import torch

from aelib import data, losses, models, train

OBJ = losses.reconstruction_objective("mse")


@pytest.fixture(scope="module")
def small():
    d = data.load("digits", verbose=False)
    return d.x_train[:256], d.x_val[:64]


def tiny():
    torch.manual_seed(0)
    return models.Autoencoder(models.MLPConfig(latent_dim=4, hidden_dims=(16,)))


def tiny_conv():
    torch.manual_seed(0)
    return models.Autoencoder(models.ConvConfig(latent_dim=4, channels=(4, 8)))


def test_fit_reduces_the_loss_and_records_history(small):
    x, v = small
    model = tiny()
    hist = train.fit(model, x, OBJ, val=v, num_epochs=5, batch_size=32)
    assert hist["epoch"] == [1, 2, 3, 4, 5]
    assert len(hist["train"]["loss"]) == len(hist["val"]["recon"]) == len(hist["seconds"]) == 5
    assert hist["train"]["loss"][-1] < hist["train"]["loss"][0]
    assert hist["train"]["loss"] == hist["train"]["recon"]


def test_seeded_runs_are_identical_on_cpu(small):
    x, _ = small
    runs = [train.fit(tiny(), x, OBJ, num_epochs=3, batch_size=32, seed=5)["train"]["loss"] for _ in range(2)]
    assert runs[0] == runs[1]
    other = train.fit(tiny(), x, OBJ, num_epochs=3, batch_size=32, seed=6)["train"]["loss"]
    assert other != runs[0]


def test_nan_guard_names_epoch_and_step(small):
    x, _ = small
    calls = {"n": 0}

    def exploding(model, batch):
        calls["n"] += 1
        loss, parts = OBJ(model, batch)
        return (loss * float("nan") if calls["n"] == 11 else loss), parts

    with pytest.raises(train.TrainingDivergedError, match=r"became nan at epoch 2, step 3 of 8.*lr=0.001"):
        train.fit(tiny(), x, exploding, num_epochs=3, batch_size=32)


def test_bad_fit_arguments_are_clear_errors(small):
    x, _ = small
    with pytest.raises(ValueError, match="larger than the training set"):
        train.fit(tiny(), x[:10], OBJ, batch_size=128)
    bad = x.clone()
    bad[3, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="train contains NaN"):
        train.fit(tiny(), bad, OBJ, num_epochs=1)
    with pytest.raises(TypeError, match="data.x_train"):
        train.fit(tiny(), data.load("digits", verbose=False), OBJ)


def test_conv_training_on_cpu_gives_back_the_default_layout(small):
    # fit trains convolutions in channels-last layout on the CPU (faster); afterwards, and after
    # a failed run, every weight is in the default layout again, and the result matches the
    # default layout's training up to rounding
    x, _ = small
    model = tiny_conv()
    train.fit(model, x, OBJ, num_epochs=2, batch_size=32, device="cpu")
    assert all(p.is_contiguous() for p in model.parameters())
    reference = tiny_conv()
    reference.train()
    opt = train.default_optimizer(reference.parameters(), 1e-3)
    generator = torch.Generator().manual_seed(train.runtime.get_seed())
    for _ in range(2):
        for idx in data.batch_indices(len(x), 32, generator=generator):
            loss, _ = OBJ(reference, x[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

    def failing(model, batch):
        inner = model.encoder[3].weight  # (8, 4, 3, 3): its two layouts differ
        assert inner.is_contiguous(memory_format=torch.channels_last) and not inner.is_contiguous()
        raise RuntimeError("stop")

    broken = tiny_conv()
    with pytest.raises(RuntimeError, match="stop"):
        train.fit(broken, x, failing, num_epochs=1, batch_size=32, device="cpu")
    assert all(p.is_contiguous() for p in broken.parameters())


def test_fast_layout_nests_and_evaluation_matches_the_default_layout(small):
    from aelib import metrics

    x, _ = small
    model = tiny_conv()
    inner = model.encoder[3].weight  # (8, 4, 3, 3): its two layouts differ
    with metrics.fast_layout(model, "cpu"):
        with metrics.fast_layout(model, "cpu"):  # an evaluation inside training, say
            pass
        assert inner.is_contiguous(memory_format=torch.channels_last)  # the inner one left it
        assert not inner.is_contiguous()
    assert inner.is_contiguous()
    with torch.no_grad():
        plain = model(x[:100]).x_hat  # the default layout
    torch.testing.assert_close(metrics.reconstruct(model, x[:100]), plain, rtol=1e-5, atol=1e-6)
    assert inner.is_contiguous()


def test_a_checkpoint_saved_in_the_default_layout_resumes_in_channels_last(tmp_path, small,
                                                                          monkeypatch):
    # a checkpoint from another device (or an older aelib) holds Adam's moments in the default
    # layout; resumed on the CPU, where the weights are channels-last, they must follow the
    # weights, or fused Adam would pair each weight with another weight's moments
    import contextlib

    x, v = small
    straight = tiny_conv()
    monkeypatch.setattr(train, "fast_layout", lambda model, device: contextlib.nullcontext(model))
    train.fit(straight, x, OBJ, val=v, num_epochs=4, batch_size=32)  # default layout throughout
    ckpt = tmp_path / "run.pt"
    train.fit(tiny_conv(), x, OBJ, val=v, num_epochs=2, batch_size=32, checkpoint=ckpt)
    monkeypatch.undo()
    resumed = tiny_conv()
    train.fit(resumed, x, OBJ, val=v, num_epochs=4, batch_size=32, checkpoint=ckpt)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_checkpoint_round_trip(tmp_path, small):
    x, _ = small
    model = tiny()
    train.fit(model, x, OBJ, num_epochs=1, batch_size=32)
    path = train.save_checkpoint(tmp_path / "m.pt", model, epoch=1)
    other = models.Autoencoder(model.config)
    state = train.load_checkpoint(path, other)
    assert state["epoch"] == 1
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    # loads with weights_only=True: nothing but tensors and plain values inside
    torch.load(path, weights_only=True)


@pytest.mark.parametrize("make", [tiny, tiny_conv], ids=["mlp", "conv"])
def test_resume_gives_exactly_the_uninterrupted_weights(tmp_path, small, make):
    x, v = small
    straight = make()
    h_straight = train.fit(straight, x, OBJ, val=v, num_epochs=4, batch_size=32)
    ckpt = tmp_path / "run.pt"
    first = make()
    train.fit(first, x, OBJ, val=v, num_epochs=2, batch_size=32, checkpoint=ckpt)
    resumed = make()  # a fresh process would start from a fresh model
    torch.manual_seed(123)  # and with a different global RNG state
    h_resumed = train.fit(resumed, x, OBJ, val=v, num_epochs=4, batch_size=32, checkpoint=ckpt)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert h_resumed["train"]["loss"] == h_straight["train"]["loss"]
    assert h_resumed["epoch"] == [1, 2, 3, 4]


def test_a_served_run_leaves_the_global_rng_as_if_it_had_trained_here(tmp_path, small):
    x, v = small
    noisy = losses.denoising_objective("gaussian", 0.3)  # draws noise from the global RNG
    for objective, draws in ((OBJ, False), (noisy, True)):
        ckpt = tmp_path / f"run-{draws}.pt"
        model = tiny()  # tiny() seeds the global RNG itself: build first
        torch.manual_seed(7)
        train.fit(model, x, objective, val=v, num_epochs=2, batch_size=64, checkpoint=ckpt)
        after_training = torch.get_rng_state()
        # the same run served from its checkpoint, to a caller in the same state ...
        model = tiny()
        torch.manual_seed(7)
        train.fit(model, x, objective, val=v, num_epochs=2, batch_size=64, checkpoint=ckpt)
        assert torch.equal(torch.get_rng_state(), after_training)
        # ... and to a caller in another state (another chapter): a run that drew nothing
        # from the global RNG leaves the caller's state as it was
        model = tiny()
        torch.manual_seed(99)
        before = torch.get_rng_state()
        train.fit(model, x, objective, val=v, num_epochs=2, batch_size=64, checkpoint=ckpt)
        assert torch.equal(torch.get_rng_state(), before) == (not draws)
        assert torch.equal(after_training, before) is False


def test_mismatched_corrupt_or_newer_checkpoints_are_refused(tmp_path, small):
    x, _ = small
    model = tiny()
    path = train.save_checkpoint(tmp_path / "m.pt", model, epoch=0)
    other = models.Autoencoder(models.MLPConfig(latent_dim=5, hidden_dims=(16,)))
    with pytest.raises(train.CheckpointError, match="made for a different model"):
        train.load_checkpoint(path, other)
    with pytest.raises(train.CheckpointError, match="different model"):
        train.fit(other, x, OBJ, num_epochs=1, checkpoint=path)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:100])
    with pytest.raises(train.CheckpointError, match="truncated or corrupt"):
        train.load_checkpoint(broken, model)
    newer = tmp_path / "newer.pt"
    train.save_checkpoint(newer, model)
    payload = torch.load(newer, weights_only=True)
    payload["format_version"] = train.FORMAT_VERSION + 1
    torch.save(payload, newer)
    with pytest.raises(train.CheckpointError, match="newer than this aelib"):
        train.load_checkpoint(newer, model)
    with pytest.raises(train.CheckpointError, match="trained with"):
        train.fit(tiny(), x, OBJ, num_epochs=1, batch_size=32, checkpoint=tmp_path / "c.pt")
        train.fit(tiny(), x, OBJ, num_epochs=2, batch_size=64, checkpoint=tmp_path / "c.pt")


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny()
    path = train.save_checkpoint(tmp_path / "m.pt", model, epoch=1)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        train.save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_load_or_fit_serves_the_second_call_from_cache(small, monkeypatch):
    x, v = small
    d = data.load("digits", verbose=False)
    first = tiny()
    h1 = train.load_or_fit("unit", first, d, OBJ, num_epochs=2, batch_size=256)
    calls = {"n": 0}

    def counting(model, batch):
        calls["n"] += 1
        return OBJ(model, batch)

    counting.cache_key = OBJ.cache_key
    second = tiny()
    h2 = train.load_or_fit("unit", second, d, counting, num_epochs=2, batch_size=256)
    assert calls["n"] == 0 and h1 == h2
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    # another mode, seed or config gives another file
    p = train.cache_path("unit", tiny(), d, OBJ, num_epochs=2, batch_size=256)
    monkeypatch.setenv("AELIB_QUICK", "1")
    assert train.cache_path("unit", tiny(), d, OBJ, num_epochs=2, batch_size=256) != p
    monkeypatch.delenv("AELIB_QUICK")
    assert train.cache_path("unit", tiny(), d, OBJ, num_epochs=2, batch_size=256, seed=1) != p
    assert p.parent == train.runtime.cache_dir()


def test_the_cache_key_names_the_starting_weights_and_a_trained_model_is_not_reused():
    d = data.load("digits", verbose=False)
    config = models.MLPConfig(latent_dim=4, hidden_dims=(16,))
    settings = {"num_epochs": 1, "batch_size": 256}
    path = train.cache_path("init", models.from_config(config, seed=3), d, OBJ, **settings)
    # the same seed gives the same key whatever the global RNG did in between
    torch.manual_seed(123)
    assert train.cache_path("init", models.from_config(config, seed=3), d, OBJ, **settings) == path
    # another starting point (another seed, the global RNG) gives another checkpoint
    assert train.cache_path("init", models.from_config(config, seed=4), d, OBJ, **settings) != path
    assert train.cache_path("init", models.Autoencoder(config), d, OBJ, **settings) != path
    # the digest is of the weights: equal weights, equal digest; one changed number, another
    a, b = models.from_config(config, seed=3), models.from_config(config, seed=3)
    assert train.weights_digest(a) == train.weights_digest(b)
    with torch.no_grad():
        b.decoder[0].bias[0] += 1e-6
    assert train.weights_digest(a) != train.weights_digest(b)
    model = models.from_config(config, seed=3)
    first = train.load_or_fit("init", model, d, OBJ, **settings)
    assert train.cache_path("init", models.from_config(config, seed=3), d, OBJ, **settings) == path
    # the same call again (a re-run cell) serves the same run ...
    assert train.load_or_fit("init", model, d, OBJ, **settings) == first
    # ... but a trained model is not the starting point of another experiment
    with pytest.raises(ValueError, match="fresh model"):
        train.load_or_fit("init-more", model, d, OBJ, **settings)


def test_epochs_for_steps_and_fit_all():
    assert train.steps_per_epoch(60000, 128) == 469 and train.steps_per_epoch(128, 128) == 1
    assert train.epochs_for_steps(4690, 60000, 128) == 10
    assert train.epochs_for_steps(4690, 1293, 128) == 427  # 11 steps per epoch
    assert train.epochs_for_steps(1, 10, 128) == 1
    with pytest.raises(ValueError):
        train.epochs_for_steps(0, 10, 4)
    d = data.load("digits", verbose=False)
    hist = train.fit_all("u", {"a": tiny(), "b": tiny()}, d,
                         {"a": OBJ, "b": losses.reconstruction_objective("l1")}, num_epochs=1)
    assert set(hist) == {"a", "b"} and hist["a"]["epoch"] == [1]


def test_cosine_schedule_anneals_to_zero_and_resumes_only_with_the_same_length(tmp_path, small):
    x, v = small
    seen = []

    def optimizer(params, lr):
        opt = torch.optim.SGD(params, lr=lr)
        step = opt.step

        def recording_step(*args, **kwargs):
            seen.append(opt.param_groups[0]["lr"])
            return step(*args, **kwargs)

        opt.step = recording_step
        return opt

    train.fit(tiny(), x, OBJ, num_epochs=2, batch_size=64, lr=0.1, optimizer=optimizer,
              lr_schedule="cosine")
    steps = len(seen)
    assert steps == 8 and seen[0] == pytest.approx(0.1)
    assert seen[steps // 2] == pytest.approx(0.05)  # half-way down the half cosine
    assert all(a > b for a, b in zip(seen, seen[1:])) and seen[-1] < 0.01
    ckpt = tmp_path / "cos.pt"
    train.fit(tiny(), x, OBJ, num_epochs=1, batch_size=64, lr_schedule="cosine", checkpoint=ckpt)
    with pytest.raises(train.CheckpointError, match="same settings"):
        train.fit(tiny(), x, OBJ, num_epochs=2, batch_size=64, lr_schedule="cosine", checkpoint=ckpt)
    with pytest.raises(ValueError, match="lr_schedule='step' is unknown"):
        train.fit(tiny(), x, OBJ, lr_schedule="step")


@pytest.mark.parametrize("every", [0.0, 1e9])
def test_checkpoints_are_written_by_time_and_always_at_the_end(tmp_path, small, monkeypatch,
                                                               every):
    x, _ = small
    monkeypatch.setattr(train, "CHECKPOINT_SECONDS", every)
    calls = []
    real = train.save_checkpoint
    monkeypatch.setattr(train, "save_checkpoint",
                        lambda *a, **k: calls.append((k["epoch"], k["step"])) or real(*a, **k))
    train.fit(tiny(), x, OBJ, num_epochs=3, batch_size=32, checkpoint=tmp_path / "c.pt")
    steps = train.steps_per_epoch(len(x), 32)
    assert steps > 1
    if every == 0:  # after every step, mid-epoch included (epoch = epochs completed before it)
        expected = [(e - 1, s) for e in (1, 2, 3) for s in range(1, steps)]
        expected = sorted(expected + [(1, 0), (2, 0), (3, 0)])
        assert sorted(calls) == expected
    else:  # only the final state
        assert calls == [(3, 0)]


def test_modules_left_out_of_the_cache_key_are_never_imported_by_training_code():
    """A module outside `source_hash` must not reach a trained model: no hashed module imports it."""
    import ast
    from pathlib import Path

    package = Path(train.__file__).parent
    left_out = {name.removesuffix(".py") for name in train.NOT_IN_TRAINING}
    assert all((package / name).is_file() for name in train.NOT_IN_TRAINING)
    for file in package.glob("*.py"):
        if file.name in train.NOT_IN_TRAINING or file.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            hit = {n.split(".")[-1] for n in names} & left_out
            assert not hit, f"{file.name} imports {hit}, which source_hash leaves out"
