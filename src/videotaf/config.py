"""Typed run configuration: dataclasses, strict YAML loading, dotted ``--set`` overrides.

A run is described by one :class:`Config` with five sections::

    model:       ModelConfig        (registry name, classes, frames, options, initial weights)
    data:        videotaf.data.DataConfig (owned by the data layer)
    optim:       OptimConfig        (SGD, LR groups, schedule, clipping, batch size)
    adversarial: AdversarialConfig  (plain | ce_adv | advprop | taf and the attack budget, Eq. 6-7)
    runtime:     RuntimeConfig      (device, AMP, seed, output dir, logging, checkpoint interval)

DataLoader workers and pinning are ``data.num_workers`` / ``data.pin_memory`` (the data layer's section).

Loading is strict: an unknown key raises naming the key and the file, a value of the wrong type raises naming
the field and the expected type. A YAML file may start from another with ``_base_: other.yaml`` (a path
relative to the file); the mappings are merged key by key, the child winning.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from videotaf.attack import TAOptions, TargetRule
from videotaf.cam import NormMode, Score, cam_method_names
from videotaf.data.config import DataConfig
from videotaf.errors import VideotafError
from videotaf.io import atomic_write_bytes
from videotaf.objective import DualNorm, Method


class ConfigError(VideotafError, ValueError):
    """A configuration file or override is invalid; the message names the file and the field."""


@dataclass
class ModelConfig:
    """Which network to build (``videotaf.models.build(name, num_classes, num_frames, **options)``).

    ``name`` is a registry name ("tsm", "gst", ...) or ``"package.module:factory"`` for a user model
    taking ``(num_classes, num_frames, **options)``. ``imagenet_weights`` is a local torchvision ResNet
    ``.pth`` passed to the model as the ``imagenet_weights`` option. ``pretrained`` is a full checkpoint
    loaded after building (an engine checkpoint, or an official one read by
    ``videotaf.models.weights.load_pretrained`` with ``pretrained_source``).
    """

    name: str = "tsm"
    num_classes: int = 174
    num_frames: int = 8
    options: dict[str, Any] = field(default_factory=dict)
    imagenet_weights: str | None = None
    pretrained: str | None = None
    pretrained_source: str = "auto"


@dataclass
class OptimConfig:
    """SGD with the TSM-style LR groups (classifier weight x5, bias x10; no decay on biases and norms).

    ``milestones`` are epochs (``schedule: step``) at which the LR is multiplied by ``gamma``;
    ``warmup_epochs`` ramps the LR linearly from 0 per iteration; ``clip_grad_norm: null`` disables clipping.
    ``batch_size`` is the global batch (split evenly over DDP processes). A step whose loss term is not finite
    stops the run (``videotaf.engine.train``); ``max_nonfinite_steps: N`` instead skips up to N such steps over
    the run (no update, as AMP's scaler skips an overflow), counted in ``metrics.jsonl``'s ``nonfinite_steps``.
    """

    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    epochs: int = 50
    schedule: Literal["step", "cosine"] = "step"
    milestones: list[int] = field(default_factory=lambda: [20, 40])
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    clip_grad_norm: float | None = 20.0
    fc_lr_mult_weight: float = 5.0
    fc_lr_mult_bias: float = 10.0
    batch_size: int = 64
    max_nonfinite_steps: int = 0


@dataclass
class AdversarialConfig:
    """Training objective (``videotaf.objective.build_objective``): Eq. 7 with the attack of Eq. 6.

    ``eps`` and ``step_size`` are on the [0, 1] pixel scale (the paper's 64/255 and 32/255); ``steps`` is K;
    ``num_nonkey`` is N, ``null`` meaning all T frames (the paper's setting).

    TA only (``method: taf``; see ``videotaf.cam`` and ``videotaf.attack.TemporalAdversarialAugmentation``):
    ``cam_score`` the class score whose gradient weights Eq. 2 (``log_prob`` standard Grad-CAM sign, ``ce`` the
    paper's literal sign, ``logit`` classic Grad-CAM), ``cam_norm`` Eq. 3 (``paper`` or ``minmax``), ``cam_relu``,
    ``target_rule`` (``paper``: Sec. 3.2's rule, the true label for a misclassified clip and a random other label
    for a correct one; ``random``: a random other label for every clip; ``true``; ``predicted``; the analysis
    commands' TA uses it too), ``second_order`` (differentiate through the Grad-CAM weights).

    ``dual_norm``: which normalisation the adversarial clips go through, for every adversarial method:
    ``auto`` (default: the method's own, auxiliary for ``advprop``/``taf``, shared for ``ce_adv``), ``aux``
    (auxiliary copies, ``videotaf.bn.convert_dual_norm``) or ``shared`` (the main layers); ignored by ``plain``.

    ``cam_layer``: the module whose output TA's per-frame Grad-CAM (Eq. 2) reads, by its dotted name in the model
    (``named_modules()`` of the unwrapped model, e.g. ``backbone.layer3`` for TSM); ``null`` (default) is the
    model's own CAM layer (layer4 for the ResNet models: 7x7 maps at the paper's 224 px, 2x2 at 56 px, where TA
    degenerates; ``backbone.layer3`` gives 4x4 there). A name that is not a module of the model stops training
    before the first step. The analysis commands (``videotaf analyze``, ``videotaf cam``) read their CAMs from
    it too unless given ``--cam-layer``. Token models (video transformers) accept only their own CAM layer.

    ``cam_method``: the weighting of Eq. 2 (``videotaf.cam.CamWeighting``): ``gradcam`` (the paper, default) or
    the ablation ``layercam`` (per-location positive gradients).

    Cost (see ``videotaf.objective``): ``fraction`` in (0, 1] is the share of each batch that is attacked and
    takes the adversarial path (1: every clip, the paper; at K = 1 a step's pass-count floor is 1 + 5 fraction / 3
    plain steps, 1.42 at 0.25, against 7/3 at 1); ``low_memory`` (default on) runs the clean loss's backward before
    the adversarial forward (about half the fused step's activation memory, the same gradients, no measurable
    time); ``false`` keeps the single backward.
    """

    method: Method = "plain"
    alpha: float = 0.7
    eps: float = 64 / 255
    step_size: float = 32 / 255
    steps: int = 1
    num_nonkey: int | None = None
    random_start: bool = False
    cam_score: Score = "log_prob"
    cam_norm: NormMode = "paper"
    cam_relu: bool = False
    target_rule: TargetRule = "paper"
    second_order: bool = False
    fraction: float = 1.0
    low_memory: bool = True
    cam_layer: str | None = None
    dual_norm: DualNorm = "auto"
    cam_method: str = "gradcam"

    def ta_options(self) -> TAOptions | None:
        """TA's options for ``build_objective(ta=...)`` (None unless the method is ``taf``)."""
        if self.method != "taf":
            return None
        return TAOptions(
            score=self.cam_score,
            cam_norm=self.cam_norm,
            relu=self.cam_relu,
            target_rule=self.target_rule,
            second_order=self.second_order,
            cam_layer=self.cam_layer,
            cam_method=self.cam_method,
        )


@dataclass
class RuntimeConfig:
    """Where and how to run. ``device: auto`` picks CUDA when available; ``amp`` (fp16 autocast + GradScaler)
    applies on CUDA only, CPU runs stay float32.

    ``checkpoint_every_steps`` > 0 also writes ``last.pt`` every that many optimizer steps (a killed run then
    loses at most that many steps; 0 = only at the end of every epoch). ``progress``: "auto" shows a tqdm bar on
    a TTY and plain lines otherwise. ``keep_cpu_memory``: on the CPU, keep freed memory in the process instead of
    returning it to the OS after every step (see :mod:`videotaf.engine.allocator`; a TAF step at 224 px runs
    about a quarter faster); no effect on CUDA.
    """

    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    seed: int = 0
    deterministic: bool = False
    output_dir: str = "runs/default"
    log_every: int = 20
    tensorboard: bool = False
    sync_bn: bool = False
    checkpoint_every_steps: int = 0
    eval_every: int = 1
    progress: Literal["auto", "bar", "lines", "none"] = "auto"
    keep_cpu_memory: bool = True


@dataclass
class Config:
    """A whole run; :func:`load_config` builds it from YAML, :func:`config_to_dict` turns it back."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


# --------------------------------------------------------------------------------------------------- typing


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any, where: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted (and widened) for floats."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, where, source)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (arg, *_) = typing.get_args(tp) or (Any,)
        return [_coerce(v, arg, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _Mismatch
        return _build_dataclass(typing.cast(type, tp), value, where, source)
    return _coerce_class(value, tp)


def _coerce_class(value: Any, tp: Any) -> Any:
    """Check ``value`` against a class (``None``'s included): ``isinstance``, except that a bool is no int (nor
    float) and an int is widened for a float. Any other annotation passes ``value`` through."""
    if not isinstance(tp, type):
        return value
    if tp in (int, float) and isinstance(value, bool):
        raise _Mismatch
    if tp is float and isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, tp):
        return value
    raise _Mismatch


def _build_dataclass(cls: type, values: dict[str, Any], where: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(
                f"{source}: unknown key {dotted!r} (known keys of {where or 'the config'}: {', '.join(sorted(names))})"
            )
        tp = hints.get(key, Any)
        try:
            kwargs[key] = _coerce(value, tp, dotted, source)
        except _Mismatch:
            got = type(value).__name__
            if isinstance(value, float) and "float" not in _type_name(tp):
                # 1e3 and 2.5 read as floats: an int field refuses them rather than truncating.
                got += "; an int is written without a dot or an exponent, e.g. 1000"
            raise ConfigError(f"{source}: field {dotted!r} expects {_type_name(tp)}, got {value!r} ({got})") from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: invalid {where or 'config'}: {exc}") from exc


# --------------------------------------------------------------------------------------------------- loading

_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.2's float (as OmegaConf resolves it): the exponent needs no dot before it nor a sign (1e-3, 5E-4, 1e3),
# a leading dot is allowed (.5); underscores as PyYAML's YAML 1.1 float allows them (1_000.0). Never a bare int.
_YAML12_FLOAT = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's float pattern in place of YAML 1.1's.

    YAML 1.1 (PyYAML) reads ``1e-3`` as the string "1e-3" (its float needs a dot and a signed exponent), which
    is how every PyTorch user writes a learning rate; YAML 1.2 and OmegaConf read it as 0.001.
    """


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(_FLOAT_TAG, _YAML12_FLOAT, list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    """``text`` as YAML with YAML 1.2 floats (``1e-3``, ``5E-4``, ``.5``, ``1_000.0``); config files and ``--set``
    values are read with it. Raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass: no arbitrary objects


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "options":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: _base_ cycle through {', '.join(str(p) for p in _seen)}")
    try:
        raw = parse_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    base = raw.pop("_base_", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: _base_ must be a path string, got {base!r}")
        parent = _read_yaml(path.parent / base, (*_seen, path.resolve()))
        raw = _merge(parent, raw)
    return raw


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. optim.lr=0.001")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}: empty key component")
    try:
        value = parse_yaml(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML: ``1e-3``, ``[10, 20]``, ``null``)."""
    raw = _merge({}, raw)
    for item in overrides or []:
        parts, value = _parse_override(item)
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def with_overrides(cfg: Config, overrides: list[str], source: str = "<config>") -> Config:
    """``cfg`` with dotted ``overrides`` applied (as ``--set`` does), validated again."""
    if not overrides:
        return cfg
    return config_from_dict(
        apply_overrides(config_to_dict(cfg), overrides), f"{source} (with --set {' '.join(overrides)})"
    )


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> Config:
    """Validate a nested mapping into a :class:`Config` (strict: unknown keys and wrong types raise)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(raw).__name__}")
    cfg = _build_dataclass(Config, raw, "", source)
    validate_config(cfg, source)
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read ``path`` (YAML; ``None`` = all defaults), apply dotted ``overrides``, validate.

    Raises :class:`ConfigError` naming the file and key for unknown keys, the field and expected type for
    wrongly-typed values.
    """
    raw = _read_yaml(Path(path)) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    if overrides:
        source += " (with --set " + " ".join(overrides) + ")"
    return config_from_dict(apply_overrides(raw, overrides), source)


def validate_config(cfg: Config, source: str = "<config>") -> None:
    """Range checks that types alone cannot express."""

    def bad(field_name: str, expected: str, got: Any) -> ConfigError:
        return ConfigError(f"{source}: field {field_name!r} expects {expected}, got {got!r}")

    m, o, a, r = cfg.model, cfg.optim, cfg.adversarial, cfg.runtime
    if m.num_classes < 1:
        raise bad("model.num_classes", "an int >= 1", m.num_classes)
    if m.num_frames < 1:
        raise bad("model.num_frames", "an int >= 1", m.num_frames)
    if o.lr <= 0:
        raise bad("optim.lr", "a float > 0", o.lr)
    if o.epochs < 1:
        raise bad("optim.epochs", "an int >= 1", o.epochs)
    if o.batch_size < 1:
        raise bad("optim.batch_size", "an int >= 1", o.batch_size)
    if o.weight_decay < 0:
        raise bad("optim.weight_decay", "a float >= 0", o.weight_decay)
    if o.nesterov and o.momentum <= 0:
        raise bad("optim.momentum", "a float > 0 when optim.nesterov is true", o.momentum)
    if list(o.milestones) != sorted(o.milestones):
        raise bad("optim.milestones", "increasing epochs", o.milestones)
    if o.warmup_epochs < 0:
        raise bad("optim.warmup_epochs", "a float >= 0", o.warmup_epochs)
    if o.max_nonfinite_steps < 0:
        raise bad(
            "optim.max_nonfinite_steps", "an int >= 0 (0: stop at the first non-finite loss)", o.max_nonfinite_steps
        )
    if o.clip_grad_norm is not None and o.clip_grad_norm <= 0:
        raise bad("optim.clip_grad_norm", "a float > 0 or null", o.clip_grad_norm)
    if not 0.0 <= a.alpha <= 1.0:
        raise bad("adversarial.alpha", "a float in [0, 1]", a.alpha)
    if not 0.0 <= a.eps <= 1.0:
        raise bad("adversarial.eps", "a float in [0, 1] (pixel scale: the paper's 64/255 is 0.251)", a.eps)
    if not 0.0 <= a.step_size <= 1.0:
        raise bad("adversarial.step_size", "a float in [0, 1] (pixel scale: the paper's 32/255 is 0.125)", a.step_size)
    if a.steps < 1:
        raise bad("adversarial.steps", "an int >= 1", a.steps)
    if not 0.0 < a.fraction <= 1.0:
        raise bad("adversarial.fraction", "a float in (0, 1] (the share of each batch that is attacked)", a.fraction)
    if a.cam_layer is not None and (not a.cam_layer.strip() or a.cam_layer != a.cam_layer.strip()):
        # Whether the name is a module of the model is checked once the model is built (engine.train).
        raise bad("adversarial.cam_layer", "null or a dotted module name such as backbone.layer3", a.cam_layer)
    if a.cam_method not in cam_method_names():
        raise bad("adversarial.cam_method", " | ".join(cam_method_names()), a.cam_method)
    if a.num_nonkey is not None and not 1 <= a.num_nonkey <= m.num_frames:
        raise bad("adversarial.num_nonkey", f"null or an int in [1, model.num_frames={m.num_frames}]", a.num_nonkey)
    if r.log_every < 1:
        raise bad("runtime.log_every", "an int >= 1", r.log_every)
    if r.checkpoint_every_steps < 0:
        raise bad("runtime.checkpoint_every_steps", "an int >= 0", r.checkpoint_every_steps)
    if r.eval_every < 1:
        raise bad("runtime.eval_every", "an int >= 1", r.eval_every)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict of builtins (what ``config.yaml`` and checkpoints store)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(cfg)


def dump_config(cfg: Config) -> str:
    """YAML text of the fully resolved config (section order kept)."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the fully resolved config to ``path`` (YAML); returns the path."""
    path = Path(path)
    atomic_write_bytes(path, dump_config(cfg).encode())
    return path
