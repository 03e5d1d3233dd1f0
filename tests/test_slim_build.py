"""SLIM's build as set-up runs it (radpath/apps/viewer/slim.py), without building: a build is
found by its source's digest, so a second set-up reuses it and a changed source builds anew;
what is not source (node_modules, build) does not count; a machine without Node says so.
The build itself runs in set-up, and tests/test_slim_view.py opens what it made."""

from __future__ import annotations

import json

import pytest

from radpath.apps.viewer import slim
from radpath.apps.viewer.assets import ViewerUnavailable


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("RADPATH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "slim-src"
    (folder / "src").mkdir(parents=True)
    (folder / "package.json").write_text('{"name": "slim"}')
    (folder / "src" / "App.tsx").write_text("export default 1\n")
    return folder


def _pretend_built(source) -> slim.SlimBuild:
    """A finished build of ``source`` where build_slim puts it (index.html and its record)."""
    digest = slim.source_digest(source)
    www = slim._build_folder(digest)
    www.mkdir(parents=True)
    (www / "index.html").write_text("<title>Slim</title>")
    (www / slim.BUILD_RECORD).write_text(json.dumps(
        {"version": slim.SLIM_VERSION, "source_digest": digest, "seconds": 120.0, "megabytes": 23.0}))
    return slim.SlimBuild.read(www)


def test_the_digest_follows_the_source_and_nothing_else(source):
    before = slim.source_digest(source)
    assert slim.source_digest(source) == before
    (source / "node_modules" / "x").mkdir(parents=True)
    (source / "node_modules" / "x" / "index.js").write_text("1")
    (source / "build").mkdir()
    (source / "build" / "index.html").write_text("old")
    assert slim.source_digest(source) == before  # installs and old builds are not the source
    (source / "src" / "App.tsx").write_text("export default 2\n")
    assert slim.source_digest(source) != before


def test_a_built_source_is_reused_and_a_changed_one_builds_anew(source, monkeypatch):
    done = _pretend_built(source)
    monkeypatch.setenv("PATH", "")  # were it to build, it would find no Node
    assert slim.build_slim(source) == done
    assert slim.built_slim() == done  # what radpath view serves
    (source / "src" / "App.tsx").write_text("export default 3\n")
    with pytest.raises(ViewerUnavailable, match="node is not installed"):
        slim.build_slim(source)
    assert slim.built_slim() == done  # the last good build stays in use


def test_no_build_and_a_source_that_is_not_slims_are_named(source, monkeypatch, tmp_path):
    assert slim.built_slim() is None
    monkeypatch.setenv("RADPATH_SLIM_SOURCE", str(tmp_path))
    with pytest.raises(ViewerUnavailable, match="holds no SLIM source"):
        slim.slim_source()


def test_the_local_settings_have_kaapanas_shape_with_this_hosts_dicomweb():
    config = slim.local_config("/dicom-web/")
    assert 'path: "/slim"' in config and "servers: [{ id: \"local\"" in config
    assert 'window.location.origin + "/dicom-web"' in config
    assert "retrieveRendered: false" in config  # as Kaapana's local.js: frames rendered in the browser
