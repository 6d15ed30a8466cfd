# -*- coding: utf-8 -*-
# Copyright (c) 2026 gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for gpu.ops.runpod_instance (documentation: plugins/modules/runpod_instance.py).

Runs the module with the values of ``env`` kept out of every log (see plugin_utils/_env_action.py).
"""

from __future__ import annotations

from ansible_collections.gpu.ops.plugins.plugin_utils._env_action import EnvActionModule


class ActionModule(EnvActionModule):
    pass
