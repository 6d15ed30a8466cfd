# -*- coding: utf-8 -*-
# Copyright: gpu.ops contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests for the collect action's argument handling and path safety."""

from __future__ import annotations

import pytest

from ansible_collections.gpu.ops.plugins.plugin_utils._collect_local import CollectError, hash_many, local_path, normalize_paths


def test_paths_accept_strings_and_dicts_with_basename_default():
    assert normalize_paths(["checkpoints/", {"src": "/var/log/x.log", "dest": "sys/x.log", "required": True}]) == [
        {"src": "checkpoints/", "dest": "checkpoints", "required": False},
        {"src": "/var/log/x.log", "dest": "sys/x.log", "required": True}]


@pytest.mark.parametrize("bad", [{"dest": "x"}, {"src": "a", "dest": "../up"}, {"src": "a", "dest": "/abs"},
                                 {"src": "a", "colour": "red"}, 42])
def test_bad_paths_entries_fail_with_a_message(bad):
    with pytest.raises(CollectError):
        normalize_paths([bad])


def test_local_path_stays_inside_the_destination(tmp_path):
    assert local_path(str(tmp_path), "a/b") == str(tmp_path / "a" / "b")
    with pytest.raises(CollectError):
        local_path(str(tmp_path), "../escape")


def test_hash_many_reports_missing_as_none(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    got = hash_many([str(tmp_path / "a"), str(tmp_path / "missing")])
    assert got[str(tmp_path / "a")] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert got[str(tmp_path / "missing")] is None
