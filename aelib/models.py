"""Autoencoder models: MLP and convolutional encoders/decoders.

Every model is built from a small frozen config (`MLPConfig`, `ConvConfig`,
`LinearConfig`, `ShallowConfig`), has `encode(x) -> z`, `decode(z) -> x_hat`
and `forward(x) -> AEOutput`, and holds no training logic. `VAEConfig` /
`VAE` add a Gaussian encoder and sampling (chapter 6). `reference_s0()` and
`reference_s1()` rebuild the two reference models of the source tutorials
exactly. Introduced in chapter 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .metrics import evaluation_mode

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def _activation(name: str | None, what: str) -> nn.Module:
    if name is None or name == "identity":
        return nn.Identity()
    if name not in _ACTIVATIONS:
        valid = ", ".join([*_ACTIVATIONS, "identity", "None"])
        raise ValueError(f"{what}={name!r} is not a known activation; use one of {valid}.")
    return _ACTIVATIONS[name]()


def _check_sizes(cfg: object) -> None:
    """Normalise `input_shape` to ints and check it and `latent_dim` (every config has both)."""
    object.__setattr__(cfg, "input_shape", tuple(int(s) for s in cfg.input_shape))
    if not isinstance(cfg.latent_dim, int) or cfg.latent_dim < 1:
        raise ValueError(f"latent_dim must be an integer >= 1, got {cfg.latent_dim!r}: "
                         f"the code needs at least one unit.")
    if len(cfg.input_shape) != 3 or any(s < 1 for s in cfg.input_shape):
        raise ValueError(f"input_shape must be (channels, height, width), got {cfg.input_shape!r}.")
    if not isinstance(getattr(cfg, "tied", False), bool):
        raise ValueError(f"tied must be True or False, got {cfg.tied!r}.")


def _check_common(cfg: MLPConfig | ConvConfig) -> None:
    _check_sizes(cfg)
    for what in ("activation", "code_activation", "output_activation"):
        _activation(getattr(cfg, what), what)


@dataclass(frozen=True)
class MLPConfig:
    """A fully connected autoencoder.

    Encoder: input -> `hidden_dims` -> `latent_dim`; decoder: the mirror
    image (`latent_dim` -> reversed `hidden_dims` -> input), unless
    `decoder_hidden_dims` says otherwise. `activation` sits between layers,
    `code_activation` on the code (None: linear code) and `output_activation`
    on the reconstruction ('sigmoid' keeps it in [0, 1]).
    """

    latent_dim: int = 32
    hidden_dims: tuple[int, ...] = (128, 64)
    decoder_hidden_dims: tuple[int, ...] | None = None
    activation: str = "relu"
    code_activation: str | None = None
    output_activation: str | None = "sigmoid"
    input_shape: tuple[int, int, int] = (1, 28, 28)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        if self.decoder_hidden_dims is not None:
            object.__setattr__(self, "decoder_hidden_dims",
                               tuple(int(h) for h in self.decoder_hidden_dims))
        _check_common(self)
        if any(h < 1 for h in (*self.hidden_dims, *(self.decoder_hidden_dims or ()))):
            raise ValueError(f"hidden layer sizes must be >= 1, got {self.hidden_dims!r}.")


@dataclass(frozen=True)
class ConvConfig:
    """A convolutional autoencoder for small square images (28x28 by default).

    Encoder: one block per entry of `channels` (3x3 convolution, activation,
    2x2 max-pooling), then a linear map to `latent_dim`. Decoder: a linear
    map back to the smallest feature map, then blocks of 2x nearest
    upsampling and 3x3 convolution, the last one producing the image.
    Height and width must be divisible by 2**len(channels).
    """

    latent_dim: int = 32
    channels: tuple[int, ...] = (16, 32)
    activation: str = "relu"
    code_activation: str | None = None
    output_activation: str | None = "sigmoid"
    input_shape: tuple[int, int, int] = (1, 28, 28)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        _check_common(self)
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels must be a non-empty tuple of sizes >= 1, got {self.channels!r}.")
        factor = 2 ** len(self.channels)
        _, h, w = self.input_shape
        if h % factor or w % factor:
            raise ValueError(f"input height and width ({h}x{w}) must be divisible by "
                             f"2**len(channels) = {factor}; use fewer conv blocks.")


@dataclass(frozen=True)
class LinearConfig:
    """A linear autoencoder: `x_hat = mean + W_dec @ W_enc @ (x - mean)`.

    No activations and no biases; the data are centred with a fixed `mean`
    (a buffer of the model, set from the training images with
    `LinearAutoencoder.center_on`) instead of learned biases, so the model
    solves exactly the problem PCA solves. `tied=True` uses one matrix:
    `W_dec = W_enc.T`. Introduced in chapter 2.
    """

    latent_dim: int = 32
    tied: bool = False
    input_shape: tuple[int, int, int] = (1, 28, 28)

    def __post_init__(self) -> None:
        _check_sizes(self)
        if self.latent_dim > math.prod(self.input_shape):
            raise ValueError(f"latent_dim={self.latent_dim} exceeds the number of input values "
                             f"({math.prod(self.input_shape)}); a linear code cannot be larger "
                             f"than its input.")


@dataclass(frozen=True)
class ShallowConfig:
    """An autoencoder with one hidden layer: `h = f(W x + b)`, `x_hat = g(W' h + c)`.

    `W: (latent_dim, D)` is the encoder matrix, `f` = `activation` (the code
    non-linearity, 'sigmoid' by default) and `g` = `output_activation`. With
    `tied=True` the decoder reuses the encoder's matrix, `W' = W.T` (a column
    code `h` is mapped by `W.T h`; the sparse-named source writes `W h^T`,
    erratum 4), and keeps only its own bias `c`. The code may be wider than
    the input's intrinsic dimension: regularisers, not the bottleneck, then
    decide what it keeps. Introduced in chapter 4.
    """

    latent_dim: int = 196
    activation: str | None = "sigmoid"
    output_activation: str | None = "sigmoid"
    tied: bool = False
    input_shape: tuple[int, int, int] = (1, 28, 28)

    def __post_init__(self) -> None:
        _check_sizes(self)
        for what in ("activation", "output_activation"):
            _activation(getattr(self, what), what)


#: Decoder likelihoods p(x|z) a VAE can have (see `losses.log_likelihood`).
LIKELIHOODS = ("bernoulli", "gaussian")


@dataclass(frozen=True)
class VAEConfig:
    """A variational autoencoder with a Gaussian encoder q(z|x) = N(mu, diag(exp(logvar))).

    `arch='mlp'`: encoder input -> `hidden_dims` -> (mu, logvar), decoder
    `latent_dim` -> reversed `hidden_dims` -> input, as `MLPConfig`;
    `arch='conv'`: the conv blocks of `ConvConfig` with `channels`. The
    encoder's last linear layer has `2 * latent_dim` outputs, split into
    `mu` and `logvar`. `likelihood` is the decoder's p(x|z): 'bernoulli'
    (sigmoid output, binary cross-entropy; the usual choice for MNIST
    pixels in [0, 1]) or 'gaussian' (sigmoid mean, fixed standard
    deviation `sigma`; squared error). `VAEConfig(latent_dim=20,
    hidden_dims=(400,))` is the PyTorch examples' VAE. Introduced in
    chapter 6.
    """

    latent_dim: int = 20
    arch: str = "mlp"
    hidden_dims: tuple[int, ...] = (400,)
    channels: tuple[int, ...] = (32, 64)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    sigma: float = 0.1
    input_shape: tuple[int, int, int] = (1, 28, 28)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_dims", tuple(int(h) for h in self.hidden_dims))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        _check_sizes(self)
        if self.arch not in ("mlp", "conv"):
            raise ValueError(f"arch={self.arch!r} is unknown; use 'mlp' or 'conv'.")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood={self.likelihood!r} is unknown; use one of {LIKELIHOODS}.")
        if not (isinstance(self.sigma, (int, float)) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number (the Gaussian decoder's standard "
                             f"deviation), got {self.sigma!r}.")
        self.body(self.latent_dim)  # validates sizes and activation now

    def body(self, latent_dim: int) -> MLPConfig | ConvConfig:
        """The plain-autoencoder config whose layers this VAE reuses, with code size `latent_dim`."""
        if self.arch == "mlp":
            return MLPConfig(latent_dim=latent_dim, hidden_dims=self.hidden_dims,
                             activation=self.activation, input_shape=self.input_shape)
        return ConvConfig(latent_dim=latent_dim, channels=self.channels,
                          activation=self.activation, input_shape=self.input_shape)


_CONFIGS = {"mlp": MLPConfig, "conv": ConvConfig, "linear": LinearConfig,
            "shallow": ShallowConfig, "vae": VAEConfig}
ModelConfig = MLPConfig | ConvConfig | LinearConfig | ShallowConfig | VAEConfig


@dataclass
class AEOutput:
    """What every model's forward pass returns.

    `x_hat`: reconstruction, same shape as the input `(N, C, H, W)`;
    `z`: code `(N, latent_dim)`. Variational models also fill `mu` and
    `logvar` `(N, latent_dim)`; for the others they stay None.
    """

    x_hat: torch.Tensor
    z: torch.Tensor
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None


class Autoencoder(nn.Module):
    """An encoder and a decoder built from a config (`MLPConfig` or `ConvConfig`).

    `encode(x: (N, C, H, W)) -> z: (N, latent_dim)`,
    `decode(z) -> x_hat: (N, C, H, W)`, `forward(x) -> AEOutput`.
    Introduced in chapter 1.
    """

    def __init__(self, config: MLPConfig | ConvConfig) -> None:
        super().__init__()
        if not isinstance(config, (MLPConfig, ConvConfig)):
            raise TypeError(f"config must be an MLPConfig or ConvConfig, got {type(config).__name__}.")
        self.config = config
        if isinstance(config, MLPConfig):
            self.encoder, self.decoder = _mlp(config)
        else:
            self.encoder, self.decoder = _conv(config)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def _check_input(self, x: torch.Tensor) -> None:
        expected = tuple(self.config.input_shape)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}.")
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            hint = ""
            if x.dim() == 2 and x.shape[1] == math.prod(expected):
                hint = f" It looks flattened: use x.view(-1, {', '.join(map(str, expected))})."
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}.{hint}")
        if x.shape[0] == 0:
            raise ValueError("got an empty batch (0 images); pass at least one image.")

    def _check_code(self, z: torch.Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected codes of shape (N, {self.latent_dim}), got {tuple(z.shape)}.")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Map images `x: (N, C, H, W)` to codes `z: (N, latent_dim)`."""
        self._check_input(x)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map codes `z: (N, latent_dim)` to reconstructions `(N, C, H, W)`."""
        self._check_code(z)
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> AEOutput:
        z = self.encode(x)  # (N, latent_dim)
        return AEOutput(x_hat=self.decode(z), z=z)


class LinearAutoencoder(Autoencoder):
    """The linear autoencoder of chapter 2 (see `LinearConfig`).

    `encode(x: (N, C, H, W)) -> z = (x - mean) @ W_enc.T: (N, latent_dim)`,
    `decode(z) -> mean + z @ W_dec.T` reshaped to images. The decoder's
    columns `decoder_weight: (D, latent_dim)` span the subspace the model
    reconstructs in. Call `center_on(x_train)` before training so that the
    model, like PCA, works on centred data. Introduced in chapter 2.
    """

    def __init__(self, config: LinearConfig) -> None:
        nn.Module.__init__(self)
        if not isinstance(config, LinearConfig):
            raise TypeError(f"config must be a LinearConfig, got {type(config).__name__}.")
        self.config = config
        d = math.prod(config.input_shape)
        self.encoder = nn.Linear(d, config.latent_dim, bias=False)
        self.decoder = None if config.tied else nn.Linear(config.latent_dim, d, bias=False)
        self.register_buffer("mean", torch.zeros(d))

    @torch.no_grad()
    def center_on(self, x: torch.Tensor) -> LinearAutoencoder:
        """Set the centring `mean` to the mean image of `x: (N, C, H, W)`; returns the model."""
        self._check_input(x)
        self.mean.copy_(x.flatten(1).mean(dim=0).to(self.mean))
        return self

    @property
    def decoder_weight(self) -> torch.Tensor:
        """The decoder matrix `W_dec: (D, latent_dim)`; with tied weights, `W_enc.T`."""
        return self.encoder.weight.T if self.decoder is None else self.decoder.weight

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        return (x.flatten(1) - self.mean) @ self.encoder.weight.T  # (N, latent_dim)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self._check_code(z)
        flat = z @ self.decoder_weight.T + self.mean  # (N, D)
        return flat.view(-1, *self.config.input_shape)


class ShallowAutoencoder(Autoencoder):
    """The one-hidden-layer autoencoder of chapters 4 and 5 (see `ShallowConfig`).

    `encode(x: (N, C, H, W)) -> h = f(x_flat @ W.T + b): (N, latent_dim)`;
    `decode(h) -> g(h @ W_dec.T + c)` reshaped to images, where `W_dec` is
    the decoder's own matrix `(D, latent_dim)` or, with tied weights, `W.T`.
    `encoder` is an `nn.Sequential` (flatten, linear, activation), so it can
    be differentiated as a function of the images. Introduced in chapter 4.
    """

    def __init__(self, config: ShallowConfig) -> None:
        nn.Module.__init__(self)
        if not isinstance(config, ShallowConfig):
            raise TypeError(f"config must be a ShallowConfig, got {type(config).__name__}.")
        self.config = config
        d = math.prod(config.input_shape)
        self.encoder = nn.Sequential(*_drop_identity(
            [nn.Flatten(), nn.Linear(d, config.latent_dim),
             _activation(config.activation, "activation")]))
        self.output = None if config.tied else nn.Linear(config.latent_dim, d)
        self.output_bias = nn.Parameter(torch.zeros(d)) if config.tied else None
        self.output_act = _activation(config.output_activation, "output_activation")

    @property
    def hidden(self) -> nn.Linear:
        """The encoder's linear layer (`W`, `b`)."""
        return self.encoder[1]

    @property
    def encoder_weight(self) -> torch.Tensor:
        """The encoder matrix `W: (latent_dim, D)`; row j is unit j's filter."""
        return self.hidden.weight

    @property
    def decoder_weight(self) -> torch.Tensor:
        """The decoder matrix `(D, latent_dim)`; with tied weights, `W.T`."""
        return self.hidden.weight.T if self.config.tied else self.output.weight

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self._check_code(z)
        if self.config.tied:  # each row z_n is a code h; W.T h for all rows at once is z @ W
            flat = z @ self.hidden.weight + self.output_bias  # (N, D)
        else:
            flat = self.output(z)
        return self.output_act(flat).view(-1, *self.config.input_shape)


class VAE(Autoencoder):
    """A variational autoencoder (see `VAEConfig`).

    `encode_distribution(x: (N, C, H, W)) -> (mu, logvar)`, each
    `(N, latent_dim)`; `encode(x) -> mu` (the posterior mean, a
    deterministic code for plots and downstream use); `reparameterize(mu,
    logvar) -> z = mu + exp(logvar / 2) * eps` with `eps ~ N(0, I)`;
    `decode(z) -> x_hat` in [0, 1] (Bernoulli probabilities or Gaussian
    means); `forward(x) -> AEOutput(x_hat, z, mu, logvar)` draws one `z` per
    image, in training and evaluation mode alike (the ELBO needs a sample;
    use `decode(encode(x))` for a deterministic reconstruction);
    `sample(n) -> (n, C, H, W)` decodes draws from the prior N(0, I).
    Introduced in chapter 6.
    """

    def __init__(self, config: VAEConfig) -> None:
        nn.Module.__init__(self)
        if not isinstance(config, VAEConfig):
            raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}.")
        self.config = config
        build = _mlp if config.arch == "mlp" else _conv
        self.encoder = build(config.body(2 * config.latent_dim))[0]  # -> (N, 2 * latent_dim)
        self.decoder = build(config.body(config.latent_dim))[1]

    def encode_distribution(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(z|x): `mu, logvar`, each `(N, latent_dim)`."""
        self._check_input(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean `mu: (N, latent_dim)` of `x: (N, C, H, W)`."""
        return self.encode_distribution(x)[0]

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """`z = mu + exp(logvar / 2) * eps`, `eps ~ N(0, I)`: a sample that gradients flow through.

        `eps` is drawn on the CPU (from `generator` if given, so that a seed
        gives the same draw on every device) and moved to `mu`'s device.
        """
        if mu.shape != logvar.shape:
            raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
                             f"{tuple(logvar.shape)}.")
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor) -> AEOutput:
        mu, logvar = self.encode_distribution(x)  # (N, latent_dim) each
        z = self.reparameterize(mu, logvar)
        return AEOutput(x_hat=self.decode(z), z=z, mu=mu, logvar=logvar)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode `n` codes drawn from the prior N(0, I): images `(n, C, H, W)`."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}.")
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.decode(z)


def _mlp(cfg: MLPConfig) -> tuple[nn.Sequential, nn.Sequential]:
    n_in = math.prod(cfg.input_shape)
    enc: list[nn.Module] = [nn.Flatten()]
    width = n_in
    for h in cfg.hidden_dims:
        enc += [nn.Linear(width, h), _activation(cfg.activation, "activation")]
        width = h
    enc += [nn.Linear(width, cfg.latent_dim), _activation(cfg.code_activation, "code_activation")]
    dec_dims = cfg.decoder_hidden_dims if cfg.decoder_hidden_dims is not None else cfg.hidden_dims[::-1]
    dec: list[nn.Module] = []
    width = cfg.latent_dim
    for h in dec_dims:
        dec += [nn.Linear(width, h), _activation(cfg.activation, "activation")]
        width = h
    dec += [nn.Linear(width, n_in), _activation(cfg.output_activation, "output_activation"),
            nn.Unflatten(1, cfg.input_shape)]
    return nn.Sequential(*_drop_identity(enc)), nn.Sequential(*_drop_identity(dec))


def _conv(cfg: ConvConfig) -> tuple[nn.Sequential, nn.Sequential]:
    c_in, h, w = cfg.input_shape
    factor = 2 ** len(cfg.channels)
    small = (cfg.channels[-1], h // factor, w // factor)  # smallest feature map
    enc: list[nn.Module] = []
    width = c_in
    for c in cfg.channels:
        enc += [nn.Conv2d(width, c, 3, padding=1), _activation(cfg.activation, "activation"),
                nn.MaxPool2d(2)]
        width = c
    enc += [nn.Flatten(), nn.Linear(math.prod(small), cfg.latent_dim),
            _activation(cfg.code_activation, "code_activation")]
    dec: list[nn.Module] = [nn.Linear(cfg.latent_dim, math.prod(small)),
                            _activation(cfg.activation, "activation"), nn.Unflatten(1, small)]
    outs = [*cfg.channels[::-1][1:], c_in]
    width = cfg.channels[-1]
    for i, c in enumerate(outs):
        last = i == len(outs) - 1
        act = _activation(cfg.output_activation if last else cfg.activation,
                          "output_activation" if last else "activation")
        dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, c, 3, padding=1), act]
        width = c
    return nn.Sequential(*_drop_identity(enc)), nn.Sequential(*_drop_identity(dec))


def _drop_identity(layers: list[nn.Module]) -> list[nn.Module]:
    return [m for m in layers if not isinstance(m, nn.Identity)]


def reference_s0(seed: int | None = None) -> Autoencoder:
    """The principles survey's MLP (S0): 784-128-64-32, mirror decoder, sigmoid output.

    ReLU between layers and none on the 32-unit code; 222,384 parameters.
    The source trains it with MSE, Adam (lr 1e-3), batch 128, 10 epochs.
    `seed` as in `from_config`. Introduced in chapter 1.
    """
    return from_config(MLPConfig(latent_dim=32, hidden_dims=(128, 64)), seed=seed)


def reference_s1(seed: int | None = None) -> Autoencoder:
    """The PyTorch MNIST tutorial's MLP (S1): 784-256-64 with ReLU on the code.

    Decoder 64-256-784 with sigmoid output; 435,536 parameters. The source
    trains it with MSE, Adam (lr 1e-3), batch 128, 10 epochs. `seed` as in
    `from_config`. Introduced in chapter 1.
    """
    config = MLPConfig(latent_dim=64, hidden_dims=(256,), code_activation="relu")
    return from_config(config, seed=seed)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def config_to_dict(config: ModelConfig) -> dict:
    """A plain dict (safe for `torch.load(weights_only=True)`) describing `config`."""
    family = {cls: name for name, cls in _CONFIGS.items()}[type(config)]
    out = {"family": family}
    for key, value in asdict(config).items():
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def config_from_dict(data: dict) -> ModelConfig:
    """Inverse of `config_to_dict`."""
    data = dict(data)
    family = data.pop("family", None)
    if family not in _CONFIGS:
        raise ValueError(f"config family {family!r} is unknown; expected one of {sorted(_CONFIGS)}.")
    cls = _CONFIGS[family]
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"config has unknown fields {sorted(unknown)} for {cls.__name__}.")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def from_config(data: dict | ModelConfig, seed: int | None = None) -> Autoencoder:
    """Build a fresh model from a config or its dict form.

    Returns an `Autoencoder`, `LinearAutoencoder`, `ShallowAutoencoder` or
    `VAE`, as the config says. With `seed`, the initial weights are drawn from a
    generator seeded with it (the global RNG is left as it was), so the same
    seed gives the same starting point whatever ran before (and chapters that
    share a trained model share its cache entry). Introduced in chapter 1.
    """
    config = config_from_dict(data) if isinstance(data, dict) else data
    cls = {LinearConfig: LinearAutoencoder, ShallowConfig: ShallowAutoencoder, VAEConfig: VAE}.get(
        type(config), Autoencoder)
    if seed is None:
        return cls(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


@torch.no_grad()
def interpolate(model: Autoencoder, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Decode `steps` evenly spaced points on the line between the codes of two images.

    `x_a, x_b: (1, C, H, W)` (or `(C, H, W)`); the codes are `model.encode`
    (for a VAE, the posterior means). Returns `(steps, C, H, W)`, the first
    and last being the reconstructions of `x_a` and `x_b`. Compare with
    `(1 - t) * x_a + t * x_b`, the same walk in pixel space. Introduced in
    chapter 6.
    """
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (the two ends included), got {steps!r}.")
    device = next(model.parameters()).device
    shape = tuple(model.config.input_shape)
    x_a, x_b = (x.reshape(1, *shape).to(device) for x in (x_a, x_b))
    with evaluation_mode(model):
        z_a, z_b = model.encode(x_a), model.encode(x_b)  # (1, latent_dim) each
        t = torch.linspace(0, 1, steps, device=device).unsqueeze(1)  # (steps, 1)
        return model.decode((1 - t) * z_a + t * z_b).cpu()


def latent_grid(n: int = 15, coverage: float = 0.9) -> torch.Tensor:
    """Codes on an `n` x `n` grid over the 2-d standard normal prior: `(n * n, 2)`.

    Each axis runs over the central `coverage` of N(0, 1) in equal steps of
    probability (Gaussian quantiles), so the grid is denser where the prior
    puts its mass. Row-major, first coordinate along the columns and the
    second decreasing down the rows, as a plot with `z2` upwards reads.
    Introduced in chapter 6.
    """
    if not isinstance(n, int) or n < 2 or not 0 < coverage < 1:
        raise ValueError(f"need an integer n >= 2 and 0 < coverage < 1, got n={n!r}, "
                         f"coverage={coverage!r}.")
    lo = (1 - coverage) / 2
    values = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(lo, 1 - lo, n))
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")
    return torch.stack([z1.flatten(), z2.flatten()], dim=1)
