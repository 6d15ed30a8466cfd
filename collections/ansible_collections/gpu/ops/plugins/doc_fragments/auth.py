# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by every gpu.ops module. Every module accepts all of them (a module uses
    # the ones of the providers it talks to), so one module_defaults block for group/gpu.ops.all works.
    DOCUMENTATION = r"""
options:
  runpod_api_key:
    description:
      - RunPod API key (read/write scope to create instances).
      - If not set, the value of the E(RUNPOD_API_KEY) environment variable is used.
      - Never logged or returned.
    type: str
  runpod_api_url:
    description:
      - Base URL of the RunPod REST API v2.
      - If not set, the value of the E(RUNPOD_API_URL) environment variable is used, then the default.
      - Point it at the gpu.ops simulator (C(gpuops-sim start) prints the exports) to run without an account.
    type: str
    default: https://api.runpod.io/v2
  runpod_graphql_url:
    description:
      - URL of the RunPod GraphQL API, used only for interruptible (spot) pods, which REST v2 cannot create.
      - If not set, the value of the E(RUNPOD_GRAPHQL_URL) environment variable is used, then the default.
    type: str
    default: https://api.runpod.io/graphql
  vast_api_key:
    description:
      - Vast.ai API key.
      - If not set, the value of the E(VAST_API_KEY) environment variable is used.
      - Never logged or returned.
    type: str
  vast_api_url:
    description:
      - Base URL of the Vast.ai API (the client appends C(/api/v0/...) and C(/api/v1/...)).
      - If not set, the value of the E(VAST_API_URL) environment variable is used, then the default.
    type: str
    default: https://console.vast.ai
  api_timeout:
    description:
      - Timeout in seconds of one HTTP request.
    type: float
    default: 30
  api_deadline:
    description:
      - Total time in seconds one API call may take including its retries.
      - Calls are retried with jittered exponential backoff on HTTP 429 (honouring C(Retry-After)), 502, 503, 504
        and connection errors until this deadline.
    type: float
    default: 120
notes:
  - Every gpu.ops module accepts the connection options of both providers, so they can be set once with
    C(module_defaults) for C(group/gpu.ops.all).
  - API keys are redacted from every message the modules return.
requirements:
  - requests
"""
