import pytest
import torch

from aelib import models


def test_reference_models_match_the_sources_exactly():
    s0, s1 = models.reference_s0(), models.reference_s1()
    assert models.count_parameters(s0) == 222_384
    assert models.count_parameters(s1) == 435_536
    linears = [m for m in s0.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 128), (128, 64), (64, 32), (32, 64), (64, 128), (128, 784)]
    # S0: no activation on the code; S1: ReLU on the code
    assert isinstance(s0.encoder[-1], torch.nn.Linear)
    assert isinstance(s1.encoder[-1], torch.nn.ReLU)
    for m in (s0, s1):
        assert isinstance(m.decoder[-2], torch.nn.Sigmoid)


@pytest.mark.parametrize("config", [
    models.MLPConfig(latent_dim=2, hidden_dims=(64,)),
    models.MLPConfig(latent_dim=8, hidden_dims=(), activation="tanh", output_activation=None),
    models.ConvConfig(latent_dim=16),
    models.ConvConfig(latent_dim=4, channels=(8,), code_activation="relu"),
])
def test_forward_shapes_and_output_range(config):
    model = models.Autoencoder(config)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        out = model(x)
    assert out.x_hat.shape == x.shape and out.z.shape == (5, config.latent_dim)
    assert torch.equal(model.encode(x), out.z)
    if config.output_activation == "sigmoid":
        assert float(out.x_hat.min()) >= 0 and float(out.x_hat.max()) <= 1


def test_clear_errors_for_bad_configs_and_inputs():
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1"):
        models.MLPConfig(latent_dim=0)
    with pytest.raises(ValueError, match="not a known activation"):
        models.MLPConfig(activation="relu6")
    with pytest.raises(ValueError, match="divisible"):
        models.ConvConfig(channels=(8, 8, 8))
    model = models.reference_s0()
    with pytest.raises(ValueError, match=r"looks flattened: use x.view\(-1, 1, 28, 28\)"):
        model(torch.rand(4, 784))
    with pytest.raises(ValueError, match="empty batch"):
        model(torch.rand(0, 1, 28, 28))
    with pytest.raises(ValueError, match=r"codes of shape \(N, 32\)"):
        model.decode(torch.rand(3, 16))


def test_config_round_trip():
    for cfg in (models.MLPConfig(latent_dim=3, hidden_dims=(10, 5), code_activation="relu"),
                models.ConvConfig(latent_dim=7, channels=(4, 8))):
        d = models.config_to_dict(cfg)
        assert models.config_from_dict(d) == cfg
        assert models.count_parameters(models.from_config(d)) == models.count_parameters(models.Autoencoder(cfg))
    with pytest.raises(ValueError, match="unknown fields"):
        models.config_from_dict({"family": "mlp", "latent": 3})
