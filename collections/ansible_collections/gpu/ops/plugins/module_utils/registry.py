# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The provider registry: every provider gpu.ops knows, by name.

PRIVATE to the collection: the API may change between releases. No Ansible imports.

Generic code (modules, the inventory plugin, the controller's plugins) never names a provider: it asks the
registry for the class (:func:`get`) and the class for what it needs (its options, quota, poll pacing, labels,
whether an offer is single-use; see :class:`provider.Provider`). A provider lives in its own module_utils file;
adding one is that file plus one entry in :data:`BUILTIN`. The built-in providers are imported here by name,
statically: AnsiballZ bundles only the module_utils a module imports, so no discovery at run time.
"""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.module_utils.provider import ConfigError, Provider
from ansible_collections.gpu.ops.plugins.module_utils.runpod import RunPodProvider
from ansible_collections.gpu.ops.plugins.module_utils.vast import VastProvider

# The one list of built-in providers (in this order in option choices, defaults and searches).
BUILTIN = (RunPodProvider, VastProvider)

_PROVIDERS = {}


def register(cls):
    """Add a provider class (usable as a class decorator); a name registered twice is an error."""
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError("%r is not a Provider class" % (cls,))
    name = getattr(cls, "name", None)
    if not name or name == Provider.name or not str(name).isidentifier():
        raise ValueError("provider class %s needs a name (a Python identifier)" % cls.__name__)
    if name in _PROVIDERS and _PROVIDERS[name] is not cls:
        raise ValueError("provider %r is registered already (%s)" % (name, _PROVIDERS[name].__name__))
    secrets = [o for o in cls.options if o.secret]
    if len(secrets) > 1:
        raise ValueError("provider %r declares more than one secret option" % name)
    if secrets and secrets[0].env and not secrets[0].env.endswith("_API_KEY"):
        # the gpuops CLI masks every *_API_KEY variable in its output; a key named otherwise would not be masked
        raise ValueError("provider %r: its key's environment variable must end in _API_KEY, not %r"
                         % (name, secrets[0].env))
    _PROVIDERS[name] = cls
    return cls


def unregister(name):
    """Remove a provider (tests register their own); unknown names are ignored."""
    _PROVIDERS.pop(name, None)


def get(name):
    """The provider class named ``name``; ConfigError naming the known ones otherwise."""
    try:
        return _PROVIDERS[name]
    except (KeyError, TypeError):
        raise ConfigError("unknown provider %r; known: %s" % (name, ", ".join(names()))) from None


def find(name):
    """The provider class named ``name``, or None."""
    return _PROVIDERS.get(name)


def names():
    """Every provider name, built-in ones first, in registration order."""
    return list(_PROVIDERS)


def classes():
    return list(_PROVIDERS.values())


def options():
    """Every connection option of every provider (module argument specs, messages)."""
    return [o for cls in classes() for o in cls.options]


def key_hint():
    """"runpod_api_key/RUNPOD_API_KEY or vast_api_key/VAST_API_KEY": how to configure any provider."""
    keys = [cls.key_option() for cls in classes()]
    return " or ".join("%s/%s" % (k.name, k.env) for k in keys if k is not None)


def single_use_offers(provider_name):
    """True when an offer of ``provider_name`` can be rented once only (unknown providers: False)."""
    cls = find(provider_name)
    return bool(cls is not None and cls.single_use_offers)


def api_poll(provider_name):
    """(first delay, steady interval) of API polls of one instance, or None."""
    cls = find(provider_name)
    return cls.api_poll if cls is not None else None


for _cls in BUILTIN:
    register(_cls)
