"""The domain registry: the one list of environment families, imported lazily.

A grid job never imports RDKit or ViennaRNA: each entry names its class by path and is imported
only when an environment of that domain is built. Adding a domain is one line here.
"""
from __future__ import annotations

import collections.abc
import importlib
import inspect
import types
import typing
from typing import Any, Callable

import torch

from pipeline_lib.core.env import CAPABILITIES, CAPABILITY_METHODS, ENUMERABLE, Environment, rewards_module
from pipeline_lib.domains.contract import check_members

DOMAINS = {
    "hypergrid": "pipeline_lib.domains.hypergrid.env:HyperGrid",
    "sequence": "pipeline_lib.domains.sequence.env:Sequence",
    "molecule": "pipeline_lib.domains.molecule.env:Molecule",
    "subset": "pipeline_lib.domains.subset.env:Subset",
}


def domain_class(domain: str) -> type:
    """The environment class of a registered domain; an entry of DOMAINS that names no class is a ValueError
    naming the entry."""
    if domain not in DOMAINS:
        raise ValueError(f"domain: unknown domain {domain!r}; expected one of {sorted(DOMAINS)}")
    module, _, name = DOMAINS[domain].partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"domain {domain!r}: pipeline_lib.domains.DOMAINS[{domain!r}] = {DOMAINS[domain]!r} names "
                         f"no class ({type(err).__name__}: {err}); expected 'package.module:Class'") from err
    if not isinstance(cls, type):
        raise ValueError(f"domain {domain!r}: DOMAINS[{domain!r}] = {DOMAINS[domain]!r} is not a class")
    return cls


def domain_rewards(domain: str):
    """The rewards module of a registered domain: the one its class names (``rewards_module``)."""
    return rewards_module(domain_class(domain))


def _matches(value: Any, hint: Any) -> bool:
    """Does a config value fit a constructor's type hint (int, float, str, bool, None, list[...], unions)?"""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, collections.abc.Sequence):  # YAML gives lists
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(_matches(k, key) and _matches(v, item) for k, v in value.items())
    if hint is Any or (origin is not None and not isinstance(origin, type)):  # Literal, Callable[...]: not checked
        return True
    return isinstance(value, origin or hint)


def _hint_name(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if typing.get_origin(hint) is None else None
    return text or str(hint).replace("typing.", "")


def check_params(domain: str, params: dict[str, Any], where: str = "params") -> None:
    """Names and types of a domain's parameters against its constructor, before anything is built."""
    cls = domain_class(domain)
    spec = inspect.signature(cls.__init__).parameters
    if "device" not in spec and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in spec.values()):
        raise ValueError(f"domain {domain!r}: {cls.__name__}.__init__ takes no 'device' keyword; an environment is "
                         f"built as {cls.__name__}(**params, device=...) (README, Extending)")
    check_kwargs(cls.__init__, params, where, ("self", "device"), f"domain {domain!r}")


def check_kwargs(fn: Callable[..., Any], params: dict[str, Any], where: str = "", given: tuple[str, ...] = (),
                 owner: str = "") -> None:
    """Names and types of the keyword arguments ``params`` against ``fn``'s signature and type hints (``given``: the
    parameters its caller fills): a ValueError names the key (``where.key``) and what was expected. Where hints
    cannot be read, names alone are checked; a function taking ``**kwargs`` takes any name."""
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - a plug-in's hint naming what its module does not import
        hints = {}
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    allowed = [p for p, spec in signature.parameters.items() if p not in given and spec.kind not in variadic]
    takes_any = any(spec.kind is inspect.Parameter.VAR_KEYWORD for spec in signature.parameters.values())
    prefix, of = f"{where}." if where else "", f" of {owner}" if owner else ""
    for key, value in params.items():
        if key not in allowed:
            if takes_any:
                continue
            raise ValueError(f"{prefix}{key}: unknown parameter{of}; expected some of {allowed}")
        hint = hints.get(key, Any)
        if not _matches(value, hint):
            raise ValueError(f"{prefix}{key}: expected {_hint_name(hint)}, got {value!r}")
    absent = [p for p in allowed if signature.parameters[p].default is inspect.Parameter.empty and p not in params]
    if absent:
        raise ValueError(f"{where + ': ' if where else ''}{owner or 'it'} needs {absent}")


def make_env(domain: str, params: dict[str, Any], device: torch.device | str = "cpu") -> Environment:
    """Instantiate a domain by name; unknown names and bad parameters name the offending key."""
    check_params(domain, params)
    try:
        env = domain_class(domain)(**params, device=device)
    except (TypeError, ValueError) as err:
        raise ValueError(f"params of domain {domain!r}: {err}") from err
    check_members(env)
    have = env.capabilities()
    lacking = [name for name in CAPABILITIES if name not in have]
    wrong = {name: why for name, why in have.items() if why is not None and not isinstance(why, str)}
    if lacking or wrong:
        raise ValueError(f"domain {domain!r}: {type(env).__name__}.capabilities() must answer for every name in "
                         f"core.env.CAPABILITIES (None where it has one, else why not); "
                         + (f"it lacks {lacking}" if lacking else f"not None or a reason: {wrong}"))
    for name, why in have.items():
        methods = [m for m in CAPABILITY_METHODS.get(name, ()) if not callable(getattr(env, m, None))]
        if why is None and methods:
            raise ValueError(f"domain {domain!r}: {type(env).__name__} declares {name!r} (capabilities() None) but "
                             f"has no {', '.join(methods)}; implement {'them' if len(methods) > 1 else 'it'} "
                             f"(core/env.py gives the shapes) or give the capability a reason it is absent")
    if have.get(ENUMERABLE, "") is None and not isinstance(getattr(env, "n_states", None), int):
        raise ValueError(f"domain {domain!r}: {type(env).__name__} declares 'enumerable' but has no int n_states "
                         f"(the number of states, len(all_states()); core/env.py)")
    return env


__all__ = ["DOMAINS", "Environment", "check_kwargs", "check_params", "domain_class", "domain_rewards", "make_env"]
