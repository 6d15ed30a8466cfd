# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests run against scripted servers with fake sleeps: the per-user request budgets and API poll
floors are off (tests that check them turn them on), and nothing is written to the user's cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_shared_api_budget(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUOPS_API_QUOTAS", "off")
    monkeypatch.setenv("GPUOPS_API_QUOTA_DIR", str(tmp_path / "quota"))
