"""Interrupted training loses nothing: a killed run resumes to the same weights, bit for bit.

Every run is a separate Python process with one thread, so the reference
and the interrupted run compute in the same order. The interrupted run
checkpoints after every step (CHECKPOINT_SECONDS = 0) and is killed with
SIGKILL, deterministically, by an `on_step` callback at a chosen step in
the middle of an epoch; a second process resumes from the checkpoint. The
objective adds noise from the global RNG, so the RNG state must be restored
too. A kill during a checkpoint write (between writing the temporary file
and renaming it) must leave the previous checkpoint intact and usable.
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from aelib import models, train

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from aelib import losses, models, train

    checkpoint, out = sys.argv[1], sys.argv[2]
    kill_at = int(os.environ.get("KILL_AT_STEP", "0"))
    kill_in_write = int(os.environ.get("KILL_IN_WRITE", "0"))
    train.CHECKPOINT_SECONDS = 0.0  # write after every step
    if kill_in_write:
        real_replace, calls = os.replace, []
        def replace(src, dst):
            calls.append(src)
            if len(calls) == kill_in_write:  # the temporary file is written, not yet renamed
                os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst)
        train.os.replace = replace
    seen = []
    def on_step(epoch, step):
        seen.append((epoch, step))
        if len(seen) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    x = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    model = models.from_config(models.MLPConfig(latent_dim=4, hidden_dims=(16,),
                                                input_shape=(1, 8, 8)), seed=3)
    objective = losses.denoising_objective("gaussian", 0.2)  # draws from the global RNG
    torch.manual_seed(7)
    train.fit(model, x, objective, num_epochs=3, batch_size=16, seed=5, device="cpu",
              progress=False, checkpoint=checkpoint if checkpoint != "-" else None,
              on_step=on_step)
    torch.save(model.state_dict(), out)
""")

STEPS_PER_EPOCH = train.steps_per_epoch(200, 16)  # 13


def run(tmp_path, checkpoint, out, **env):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **{k: str(v) for k, v in env.items()}}
    return subprocess.run([sys.executable, str(script), str(checkpoint), str(out)], env=environ,
                          capture_output=True, text=True, timeout=600)


def same_weights(a, b) -> bool:
    wa, wb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    done = run(tmp, "-", tmp / "reference.pt")
    assert done.returncode == 0, done.stderr
    return tmp / "reference.pt"


def test_sigkill_resume_bitwise(tmp_path, reference):
    kill_at = STEPS_PER_EPOCH + 7  # step 7 of epoch 2
    killed = run(tmp_path, tmp_path / "c.pt", tmp_path / "never.pt", KILL_AT_STEP=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "never.pt").exists()
    state = torch.load(tmp_path / "c.pt", weights_only=True)  # plain tensors: weights_only works
    assert (state["epoch"], state["step"]) == (1, 7)  # one epoch done, 7 steps into the next
    assert isinstance(state["rng_state"], torch.Tensor) and isinstance(state["generator_state"], torch.Tensor)
    resumed = run(tmp_path, tmp_path / "c.pt", tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    assert same_weights(reference, tmp_path / "resumed.pt")


def test_kill_during_checkpoint_write(tmp_path, reference):
    write = STEPS_PER_EPOCH + 3  # the 16th write: steps 1-12, end of epoch 1, steps 1-2, then 3
    killed = run(tmp_path, tmp_path / "c.pt", tmp_path / "never.pt", KILL_IN_WRITE=write)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the kill came after the temporary file was written"
    model = models.from_config(models.MLPConfig(latent_dim=4, hidden_dims=(16,),
                                                input_shape=(1, 8, 8)), seed=3)
    state = train.load_checkpoint(tmp_path / "c.pt", model)  # the previous one, intact
    assert (state["epoch"], state["step"]) == (1, 2)
    resumed = run(tmp_path, tmp_path / "c.pt", tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    assert same_weights(reference, tmp_path / "resumed.pt")


def test_resume_without_the_kill_is_the_same_as_training_through(tmp_path, reference):
    done = run(tmp_path, tmp_path / "c.pt", tmp_path / "through.pt")
    assert done.returncode == 0, done.stderr
    assert same_weights(reference, tmp_path / "through.pt")  # checkpointing changes nothing
