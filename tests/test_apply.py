"""Tests of apply.py against real pygeoapi trees.

Every test runs apply.py as a command on a real checkout: one built from
a release's sdist (downloaded once into apply.py's cache), or a clone of
the repository that ``PYGEOAPI_GIT_SOURCE`` names. The overlay is a small
stand-in tree, so these tests do not depend on the state of the real
manager. One test uses the real overlay when it exists. No MongoDB server
is needed, because apply.py never connects to one.
"""

import ast
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import git
import pytest

ROOT = Path(__file__).resolve().parent.parent
APPLY = ROOT / 'apply.py'
SOURCE_VARIABLE = 'PYGEOAPI_GIT_SOURCE'
MANAGER_PATH = 'pygeoapi/process/manager/mongodb_.py'
MANAGER_CLASS = 'pygeoapi.process.manager.mongodb_.MongoDBManager'

SDIST_RELEASES = ['0.14.0', '0.15.0', '0.16.1', '0.17.0', '0.18.0',
                  '0.19.0', '0.20.0', '0.21.0', '0.22.0', '0.23.5',
                  '0.24.0']
GIT_REFS = ['0.21.0', '0.23.4', 'master']

STAND_IN_MANAGER = '''"""Stand-in MongoDB manager for tests/test_apply.py."""

from pygeoapi.process.manager.base import BaseManager


class MongoDBManager(BaseManager):
    """A manager class with no behaviour."""
'''

sys.path.insert(0, str(ROOT))
import apply  # noqa: E402


def run_apply(*arguments, overlay=None, env=None):
    """Run apply.py and return the finished process (output as text)."""

    command = [sys.executable, str(APPLY), *map(str, arguments)]
    if overlay is not None:
        command += ['--overlay', str(overlay)]
    return subprocess.run(command, capture_output=True, text=True,
                          env=env or os.environ.copy(), timeout=300)


def snapshot(tree):
    """Map each file of `tree` (outside .git) to its sha256."""

    files = {}
    for path in sorted(Path(tree).rglob('*')):
        relative = path.relative_to(tree)
        if relative.parts[0] == '.git' or not path.is_file():
            continue
        files[relative.as_posix()] = hashlib.sha256(
            path.read_bytes()).hexdigest()
    return files


def registered_manager(tree):
    """Read PLUGINS['process_manager']['MongoDB'] from a checkout."""

    module = ast.parse((Path(tree) / 'pygeoapi/plugin.py').read_bytes())
    for node in module.body:
        if isinstance(node, ast.Assign) and any(
                getattr(target, 'id', None) == 'PLUGINS'
                for target in node.targets):
            plugins = ast.literal_eval(node.value)
            return plugins['process_manager'].get('MongoDB')
    return None


def cached_sdist_repository(release, tmp_path):
    """Return apply.py's cached repository of a release's sdist."""

    scratch = tmp_path / 'scratch'
    result = run_apply('--check', '--source', 'sdist', '--ref', release,
                       '--dest', scratch)
    assert result.returncode == 0, result.stderr
    return apply.CACHE_DIR / apply.SDIST_REPOS / release


def status_lines(tree):
    return sorted(git.Repo(tree).git.status(
        '--porcelain', '--untracked-files=all').splitlines())


@pytest.fixture()
def overlay(tmp_path):
    """A stand-in overlay tree containing one manager module."""

    folder = tmp_path / 'overlay'
    target = folder / MANAGER_PATH
    target.parent.mkdir(parents=True)
    target.write_text(STAND_IN_MANAGER)
    return folder


@pytest.fixture()
def git_source():
    source = os.environ.get(SOURCE_VARIABLE)
    if not source:
        pytest.skip(f'{SOURCE_VARIABLE} is not set to a pygeoapi git '
                    f'repository')
    return source


def assert_applied(result, tree, ref):
    assert result.returncode == 0, result.stderr
    assert f'ref {ref}' in result.stdout
    assert (Path(tree) / MANAGER_PATH).is_file()
    assert registered_manager(tree) == MANAGER_CLASS
    assert 'verified: the overlay compiles' in result.stdout


@pytest.mark.parametrize('release', SDIST_RELEASES)
def test_sdist_apply_reapply_revert(release, overlay, tmp_path):
    dest = tmp_path / 'checkout'

    first = run_apply('--source', 'sdist', '--ref', release, '--dest',
                      dest, overlay=overlay)
    assert_applied(first, dest, release)
    assert f'copy {MANAGER_PATH}' in first.stdout
    if release == '0.14.0':
        assert 'apply plugin-register-mongodb.diff' in first.stdout
    else:
        assert 'apply plugin-register-mongodb.diff' not in first.stdout

    after_first = snapshot(dest)
    second = run_apply('--source', 'sdist', '--ref', release, '--dest',
                       dest, overlay=overlay)
    assert second.returncode == 0, second.stderr
    assert 'nothing changed' in second.stdout
    assert f'already in place: {MANAGER_PATH}' in second.stdout
    assert snapshot(dest) == after_first

    reverted = run_apply('--revert', '--dest', dest, overlay=overlay)
    assert reverted.returncode == 0, reverted.stderr
    assert f'back at ref {release}' in reverted.stdout
    assert status_lines(dest) == []
    repo = git.Repo(dest)
    assert repo.git.diff(release) == ''
    assert repo.head.commit == repo.commit(release)


def test_sdist_patches_not_applicable(overlay, tmp_path):
    dest = tmp_path / 'checkout'

    result = run_apply('--source', 'sdist', '--ref', '0.24.0', '--dest',
                       dest, '--tests', overlay=overlay)

    assert_applied(result, dest, '0.24.0')
    assert ('not applicable config-mongodb-manager.diff: '
            'pygeoapi-config.yml is not in this checkout') in result.stdout
    assert ('not applicable tests-config-0.18.diff: '
            'tests/pygeoapi-test-config.yml is not in this checkout'
            ) in result.stdout
    assert 'apply tests-manager-0.22.diff' in result.stdout
    manager_test = (dest / 'tests/manager/test_manager.py').read_text()
    assert "os.environ['PYGEOAPI_MONGODB_URI']" in manager_test


def test_tests_group_needs_flag(overlay, tmp_path):
    dest = tmp_path / 'checkout'

    result = run_apply('--source', 'sdist', '--ref', '0.21.0', '--dest',
                       dest, overlay=overlay)

    assert result.returncode == 0, result.stderr
    assert 'tests group, needs --tests' in result.stdout
    assert 'TinyDB' in (dest / 'tests/test_manager.py').read_text()


def test_check_fresh_dest_writes_nothing(overlay, tmp_path):
    dest = tmp_path / 'checkout'

    result = run_apply('--check', '--source', 'sdist', '--ref', '0.14.0',
                       '--dest', dest, overlay=overlay)

    assert result.returncode == 0, result.stderr
    assert f'would copy {MANAGER_PATH}' in result.stdout
    assert 'would apply plugin-register-mongodb.diff' in result.stdout
    assert 'nothing was written' in result.stdout
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == [overlay]


def test_check_existing_checkout(overlay, tmp_path):
    dest = tmp_path / 'checkout'
    run_apply('--source', 'sdist', '--ref', '0.14.0', '--dest', dest,
              overlay=overlay)
    run_apply('--revert', '--dest', dest, overlay=overlay)
    before = snapshot(dest)

    result = run_apply('--check', '--source', 'sdist', '--ref', '0.14.0',
                       '--dest', dest, overlay=overlay)

    assert result.returncode == 0, result.stderr
    assert 'would apply plugin-register-mongodb.diff' in result.stdout
    assert snapshot(dest) == before
    assert not (dest / '.git' / apply.STATE_NAME).exists()


def test_revert_check_changes_nothing(overlay, tmp_path):
    dest = tmp_path / 'checkout'
    run_apply('--source', 'sdist', '--ref', '0.14.0', '--dest', dest,
              overlay=overlay)
    before = snapshot(dest)

    result = run_apply('--revert', '--check', '--dest', dest,
                       overlay=overlay)

    assert result.returncode == 0, result.stderr
    assert 'would reverse plugin-register-mongodb.diff' in result.stdout
    assert f'would remove {MANAGER_PATH}' in result.stdout
    assert snapshot(dest) == before


def test_dirty_tree_rejected(overlay, tmp_path):
    dest = tmp_path / 'checkout'
    git.Repo.clone_from(cached_sdist_repository('0.15.0', tmp_path), dest)
    with open(dest / 'README.md', 'a') as readme:
        readme.write('local change\n')
    (dest / 'notes.txt').write_text('untracked\n')
    before = snapshot(dest)

    result = run_apply('--source', 'sdist', '--ref', '0.15.0', '--dest',
                       dest, overlay=overlay)

    assert result.returncode == 1
    assert 'changes that apply.py did not make' in result.stderr
    assert '  README.md' in result.stderr
    assert '  notes.txt' in result.stderr
    assert 'stash' in result.stderr
    assert result.stdout == ''
    assert snapshot(dest) == before


def test_change_to_applied_file_blocks_revert(overlay, tmp_path):
    dest = tmp_path / 'checkout'
    run_apply('--source', 'sdist', '--ref', '0.14.0', '--dest', dest,
              overlay=overlay)
    with open(dest / 'pygeoapi/plugin.py', 'a') as plugin:
        plugin.write('# local change\n')
    before = snapshot(dest)

    result = run_apply('--revert', '--dest', dest, overlay=overlay)

    assert result.returncode == 1
    assert '  pygeoapi/plugin.py' in result.stderr
    assert snapshot(dest) == before


def test_conflicting_hunk_changes_nothing(overlay, tmp_path):
    dest = tmp_path / 'checkout'
    run_apply('--source', 'sdist', '--ref', '0.14.0', '--dest', dest,
              overlay=overlay)
    run_apply('--revert', '--dest', dest, overlay=overlay)
    before = snapshot(dest)

    # A copy of patches/ whose extra patch expects a line that pygeoapi
    # 0.14.0 does not have, listed after one that does apply.
    patches = tmp_path / 'patches'
    patches.mkdir()
    for path in (ROOT / 'patches').iterdir():
        (patches / path.name).write_bytes(path.read_bytes())
    (patches / 'conflict.diff').write_text(
        '--- a/pygeoapi/__init__.py\n'
        '+++ b/pygeoapi/__init__.py\n'
        '@@ -30,3 +30,3 @@\n'
        ' # this context line is not in pygeoapi\n'
        "-__version__ = '0.14.0'\n"
        "+__version__ = '0.14.0+mongodb'\n"
        ' # nor is this one\n')
    with open(patches / 'manifest.toml', 'a') as manifest:
        manifest.write('\n[[patch]]\nfile = "conflict.diff"\n'
                       'group = "core"\nreleases = ">=0.14.0"\n'
                       'summary = "a patch that cannot apply"\n')

    result = run_apply('--source', 'sdist', '--ref', '0.14.0', '--dest',
                       dest, '--patches', patches, overlay=overlay)

    assert result.returncode == 1
    assert 'conflict.diff' in result.stderr
    assert 'patch failed: pygeoapi/__init__.py:30' in result.stderr
    assert 'Nothing was written' in result.stderr
    assert snapshot(dest) == before
    assert not (dest / '.git' / apply.STATE_NAME).exists()


def test_unknown_ref_names_nearest_tags(overlay, tmp_path):
    # A repository with three release tags, built from cached sdists.
    source = git.Repo.init(tmp_path / 'source', bare=True)
    for release in ('0.21.0', '0.22.0', '0.23.5'):
        source.git.fetch(str(cached_sdist_repository(release, tmp_path)),
                         f'refs/tags/{release}:refs/tags/{release}')
    dest = tmp_path / 'checkout'

    result = run_apply('--source', source.git_dir, '--ref', '0.22.7',
                       '--dest', dest, overlay=overlay)

    assert result.returncode == 1
    assert "ref '0.22.7' is not a tag, branch or commit" in result.stderr
    assert 'nearest tags are 0.21.0, 0.22.0, 0.23.5' in result.stderr
    assert not dest.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        'overlay', 'source']


def test_unsupported_release_rejected(overlay, tmp_path):
    dest = tmp_path / 'checkout'
    source = tmp_path / 'source'
    git.Repo.clone_from(cached_sdist_repository('0.14.0', tmp_path), source)
    init = source / 'pygeoapi/__init__.py'
    init.write_text(init.read_text().replace("'0.14.0'", "'0.13.0'"))
    repo = git.Repo(source)
    repo.git.commit('-a', '-m', 'pretend to be 0.13.0')

    result = run_apply('--source', source, '--ref', repo.head.commit.hexsha,
                       '--dest', dest, overlay=overlay)

    assert result.returncode == 1
    assert 'pygeoapi 0.13.0' in result.stderr
    assert '>=0.14.0' in result.stderr
    assert not dest.exists()


def test_real_overlay_applies(tmp_path):
    if not (ROOT / 'overlay' / MANAGER_PATH).is_file():
        pytest.skip(f'overlay/{MANAGER_PATH} does not exist yet')
    dest = tmp_path / 'checkout'

    result = run_apply('--source', 'sdist', '--ref', apply.PINNED_REF,
                       '--dest', dest)

    assert_applied(result, dest, apply.PINNED_REF)
    assert ((dest / MANAGER_PATH).read_bytes()
            == (ROOT / 'overlay' / MANAGER_PATH).read_bytes())


def test_version_order():
    assert apply.parse_version('0.23.4') < apply.parse_version('0.24.dev0')
    assert apply.parse_version('0.24.dev0') < apply.parse_version('0.24.0')
    assert apply.version_matches('0.24.dev0', '>=0.22.0')
    assert not apply.version_matches('0.15.0', '>=0.14.0, <0.15.0')


@pytest.mark.parametrize('ref', GIT_REFS)
def test_git_clone_with_tests(ref, git_source, overlay, tmp_path):
    dest = tmp_path / 'checkout'
    pristine = tmp_path / 'pristine'
    repo = git.Repo.clone_from(git_source, pristine, no_checkout=True)
    repo.git.checkout('--detach', apply.resolve_ref(repo, ref).hexsha)
    baseline = status_lines(pristine)

    first = run_apply('--source', git_source, '--ref', ref, '--dest', dest,
                      '--tests', overlay=overlay)
    assert_applied(first, dest, ref)
    assert 'apply config-mongodb-manager.diff' in first.stdout
    config = (dest / 'pygeoapi-config.yml').read_text()
    assert 'connection: ${PYGEOAPI_MONGODB_URI}' in config
    test_config = (dest / 'tests/pygeoapi-test-config.yml').read_text()
    assert 'name: MongoDB' in test_config
    manager_tests = list(dest.glob('tests/**/test_manager.py'))
    assert len(manager_tests) == 1
    assert "'name': 'MongoDB'" in manager_tests[0].read_text()

    after_first = snapshot(dest)
    second = run_apply('--source', git_source, '--ref', ref, '--dest',
                       dest, '--tests', overlay=overlay)
    assert second.returncode == 0, second.stderr
    assert 'nothing changed' in second.stdout
    assert snapshot(dest) == after_first

    reverted = run_apply('--revert', '--dest', dest, overlay=overlay)
    assert reverted.returncode == 0, reverted.stderr
    assert status_lines(dest) == baseline
    assert snapshot(dest) == snapshot(pristine)


def test_git_clone_default_source(git_source, overlay, tmp_path):
    dest = tmp_path / 'checkout'
    env = dict(os.environ, **{SOURCE_VARIABLE: git_source})

    result = run_apply('--ref', '0.14.0', '--dest', dest, overlay=overlay,
                       env=env)

    assert_applied(result, dest, '0.14.0')
    assert f'cloned {git_source}' in result.stdout
    assert 'apply plugin-register-mongodb.diff' in result.stdout


def test_checkout_of_other_source_rejected(overlay, tmp_path):
    dest = tmp_path / 'checkout'
    first = run_apply('--source', 'sdist', '--ref', '0.20.0', '--dest',
                      dest, overlay=overlay)
    assert first.returncode == 0, first.stderr
    before = snapshot(dest)

    result = run_apply('--source', 'sdist', '--ref', '0.21.0', '--dest',
                       dest, overlay=overlay)

    assert result.returncode == 1
    assert 'is a checkout of' in result.stderr
    assert 'another --dest' in result.stderr
    assert snapshot(dest) == before
