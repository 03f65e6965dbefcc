"""Turn a pygeoapi checkout into one that uses this project's MongoDB manager.

apply.py checks out a pygeoapi ref, copies everything under ``overlay/``
into it and applies the patches that ``patches/manifest.toml`` lists for
that release. It checks every step before it writes anything, so a patch
that does not apply, a dirty work tree or an unknown ref stops it with
the checkout untouched. A second run changes nothing, ``--check`` only
reports, and ``--revert`` undoes exactly what apply.py changed, using the
state record it keeps in the checkout's ``.git`` directory.

The source is a git URL, a local repository (bare or not) or ``sdist``:
the release's sdist from PyPI, turned into a one-commit repository tagged
with the version. ``PYGEOAPI_GIT_SOURCE`` replaces the default source::

    python apply.py                      # 0.24.0 into build/pygeoapi-0.24.0
    python apply.py --source sdist --ref 0.21.0 --tests
    python apply.py --check
    python apply.py --revert
"""

import argparse
import ast
import dataclasses
import hashlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

import git

PINNED_REF = '0.24.0'
DEFAULT_SOURCE = 'https://github.com/geopython/pygeoapi.git'
SOURCE_VARIABLE = 'PYGEOAPI_GIT_SOURCE'
SDIST_SOURCE = 'sdist'

ROOT = Path(__file__).resolve().parent
OVERLAY_DIR = ROOT / 'overlay'
PATCHES_DIR = ROOT / 'patches'
MANIFEST_NAME = 'manifest.toml'
# Bumped when the way a repository is built from an sdist changes.
SDIST_REPOS = 'sdist-repos-2'
CACHE_DIR = Path(os.environ.get(
    'XDG_CACHE_HOME', Path.home() / '.cache')) / 'pygeoapi-mongodb-manager'

# The state record lives inside .git, so it never shows up as a change in
# the work tree and goes away with the checkout.
STATE_NAME = 'pygeoapi-mongodb-manager.json'

REGISTRY_PATH = 'pygeoapi/plugin.py'
VERSION_PATH = 'pygeoapi/__init__.py'
MANAGER_NAME = 'MongoDB'
MANAGER_CLASS = 'pygeoapi.process.manager.mongodb_.MongoDBManager'

VERSION_PATTERN = re.compile(
    r'^(\d+)\.(\d+)(?:\.(\d+))?(?:[.-]?(dev|a|b|rc)(\d*))?$')
STAGE_ORDER = {'dev': -4, 'a': -3, 'b': -2, 'rc': -1, None: 0}
CLAUSE_PATTERN = re.compile(r'^(>=|<=|==|!=|>|<)\s*(\S+)$')


class ApplyError(Exception):
    """A failure that stops apply.py, with a message naming value and fix."""


# Versions and the manifest.

def parse_version(text):
    """Return a sortable key for a pygeoapi version such as 0.24.dev0.

    :raises ValueError: when `text` is not a version of that form
    """

    match = VERSION_PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f'not a pygeoapi version: {text!r}')
    major, minor, patch, stage, number = match.groups()
    return (int(major), int(minor), int(patch or 0),
            STAGE_ORDER[stage], int(number or 0))


def version_matches(version, releases):
    """Tell whether `version` satisfies every clause of `releases`."""

    key = parse_version(version)
    for clause in releases.split(','):
        match = CLAUSE_PATTERN.match(clause.strip())
        if match is None:
            raise ApplyError(
                f'invalid release clause {clause.strip()!r} in '
                f'{MANIFEST_NAME}. Write it as e.g. ">=0.14.0, <0.15.0".')
        operator, bound = match.groups()
        other = parse_version(bound)
        holds = {
            '>=': key >= other, '<=': key <= other, '==': key == other,
            '!=': key != other, '>': key > other, '<': key < other,
        }[operator]
        if not holds:
            return False
    return True


def load_manifest(patches_dir):
    """Read the manifest and check that every patch it names exists."""

    path = patches_dir / MANIFEST_NAME
    try:
        manifest = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ApplyError(f'{path} is missing. Pass --patches with the '
                         f'folder that holds {MANIFEST_NAME}') from None
    except tomllib.TOMLDecodeError as error:
        raise ApplyError(f'{path} is not valid TOML: {error}') from None

    for entry in manifest.get('patch', []):
        if not (patches_dir / entry['file']).is_file():
            raise ApplyError(f'{path} lists {entry["file"]}, which is not '
                             f'in {patches_dir}. Add it or drop the entry.')
        if entry.get('group') not in ('core', 'tests'):
            raise ApplyError(f'{entry["file"]} in {path} has group '
                             f'{entry.get("group")!r}. Use core or tests.')
    return manifest


def patch_paths(diff_text):
    """Return the paths a unified diff changes, in order."""

    paths = []
    for line in diff_text.splitlines():
        if line.startswith('+++ b/') or line.startswith('--- a/'):
            path = line[6:]
            if path not in paths:
                paths.append(path)
    return paths


# Sources, refs and checkouts.

def sdist_repository(version):
    """Return a local git repository containing the sdist of `version`.

    The sdist is downloaded into the cache once, then extracted and
    committed as one commit tagged `version`, so that the rest of
    apply.py treats it like any other git source.
    """

    try:
        parse_version(version)
    except ValueError:
        raise ApplyError(
            f'--source sdist needs a release version as --ref, not '
            f'{version!r}, because branches and commits need a git '
            f'source') from None

    repository = CACHE_DIR / SDIST_REPOS / version
    if (repository / '.git').is_dir():
        return repository

    archive = download_sdist(version)

    # Build the repository under a temporary name and rename it at the
    # end, so an interrupted run never leaves a half-built cache entry.
    workspace = Path(tempfile.mkdtemp(prefix='.building-',
                                      dir=make_dir(repository.parent)))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(workspace, filter='data')
        [tree] = [path for path in workspace.iterdir() if path.is_dir()]

        # setuptools writes *.egg-info anew on every pip install, so it
        # is left out like in pygeoapi's repository, where it is ignored.
        for egg_info in tree.glob('*.egg-info'):
            shutil.rmtree(egg_info)
        (tree / '.gitignore').write_text('*.egg-info/\nbuild/\n')
        repo = git.Repo.init(tree)
        with repo.config_writer() as config:
            config.set_value('user', 'name', 'apply.py')
            config.set_value('user', 'email', 'apply.py@localhost')
        repo.git.add('--all', '--force')
        repo.git.commit('--quiet', '--no-verify',
                        '-m', f'pygeoapi {version} from its sdist')
        repo.create_tag(version)
        tree.rename(repository)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return repository


def git_message(error):
    """Return the stderr of a failed git command as one plain line."""

    text = str(error.stderr).strip()
    if text.startswith("stderr: '") and text.endswith("'"):
        text = text[len("stderr: '"):-1]
    lines = [line.strip().removeprefix('error: ').removeprefix('fatal: ')
             for line in text.splitlines()
             if line.strip() and not line.startswith('Cloning into')]
    return '; '.join(lines)


def make_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def download_sdist(version):
    """Return the cached sdist of `version`, downloading it with pip."""

    folder = make_dir(CACHE_DIR / 'sdists')
    for name in (f'pygeoapi-{version}.tar.gz', f'pygeoapi-{version}.zip'):
        if (folder / name).is_file():
            return folder / name

    # 0.22.0 and later require Python 3.12, but only their files are
    # needed here, so the interpreter's version does not matter.
    command = [sys.executable, '-m', 'pip', 'download', '--quiet',
               '--no-deps', '--no-binary', ':all:',
               '--ignore-requires-python', '--dest', str(folder),
               f'pygeoapi=={version}']
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        available = re.search(r'\(from versions: ([^)]*)\)', result.stderr)
        if available:
            nearest = nearest_names(version, available.group(1).split(', '))
            raise ApplyError(
                f'pygeoapi {version} is not on PyPI. The nearest releases '
                f'are {", ".join(nearest)}. Pass one of them with --ref.')
        raise ApplyError(f'pip download of pygeoapi {version} failed: '
                         f'{result.stderr.strip()}')
    return download_sdist(version)


def nearest_names(ref, names, count=3):
    """Return the names that sort next to `ref` by version, both sides."""

    versions = []
    for name in names:
        try:
            versions.append((parse_version(name), name))
        except ValueError:
            continue
    versions.sort()
    try:
        key = parse_version(ref)
    except ValueError:
        return [name for _, name in versions[-count * 2:]]
    below = [name for version, name in versions if version < key]
    above = [name for version, name in versions if version >= key]
    return below[-count:] + above[:count]


def resolve_ref(repo, ref):
    """Return the commit `ref` names in `repo`, or None when it is unknown.

    A tag wins over a branch of the same name, and a remote branch over a
    local one, because a reused checkout may hold an old local branch.
    """

    for name in (f'refs/tags/{ref}', f'refs/remotes/origin/{ref}',
                 f'refs/heads/{ref}', ref):
        try:
            return repo.commit(name)
        except (git.BadName, git.BadObject, ValueError,
                git.GitCommandError):
            continue
    return None


def unknown_ref_error(repo, ref, source):
    tags = [tag.name for tag in repo.tags]
    nearest = nearest_names(ref, tags)
    return ApplyError(
        f'ref {ref!r} is not a tag, branch or commit of {source}. The '
        f'nearest tags are {", ".join(nearest) or "(none)"}. Pass one of '
        f'them with --ref.')


def open_checkout(source, ref, dest):
    """Return (repo, commit, fresh) for `ref` at `dest`, writing nothing.

    An existing checkout at `dest` is reused, fetching `ref` from the
    source only when the checkout lacks it. Otherwise the source is cloned
    into a temporary folder next to `dest`, which the caller renames into
    place (`fresh` is then that folder) or deletes.
    """

    if source == SDIST_SOURCE:
        source = str(sdist_repository(ref))

    if dest.exists():
        try:
            repo = git.Repo(dest)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise ApplyError(f'{dest} exists but is not a git checkout. '
                             f'Remove it or pass another --dest.') from None

        # Reusing a checkout of another source would apply the patches
        # to that source's ref of the same name, without saying so.
        origin = next((remote.url for remote in repo.remotes
                       if remote.name == 'origin'), None)
        if origin is not None and not same_source(origin, source):
            raise ApplyError(
                f'{dest} is a checkout of {origin}, not of {source}. '
                f'Remove it, or pass another --dest, or the same --source '
                f'as before.')
        commit = resolve_ref(repo, ref)
        if commit is None:
            fetch_ref(repo, source, ref)
            commit = resolve_ref(repo, ref)
        if commit is None:
            raise unknown_ref_error(repo, ref, source)
        return repo, commit, None

    staging = Path(tempfile.mkdtemp(prefix=f'.{dest.name}.',
                                    dir=make_dir(dest.parent)))
    try:
        repo = git.Repo.clone_from(source, staging, no_checkout=True)
        commit = resolve_ref(repo, ref)
        if commit is None:
            raise unknown_ref_error(repo, ref, source)
        checkout_commit(repo, commit)
    except git.GitCommandError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise ApplyError(f'git clone of {source} failed: '
                         f'{git_message(error)}. Check --source or '
                         f'{SOURCE_VARIABLE}.') from None
    except ApplyError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return repo, commit, staging


def same_source(first, second):
    """Tell whether two git sources name the same repository."""

    def normalized(source):
        source = str(source).rstrip('/')
        if '://' not in source and Path(source).exists():
            return str(Path(source).resolve())
        return source.removesuffix('.git')

    return normalized(first) == normalized(second)


def fetch_ref(repo, source, ref):
    """Fetch tags and branches from `source` into a reused checkout."""

    try:
        repo.git.fetch('--quiet', '--tags', source,
                       '+refs/heads/*:refs/remotes/origin/*')
    except git.GitCommandError as error:
        raise ApplyError(f'git fetch of {ref!r} from {source} failed: '
                         f'{git_message(error)}. Check --source or '
                         f'{SOURCE_VARIABLE}.') from None


def checkout_commit(repo, commit):
    try:
        repo.git.checkout('--quiet', '--detach', commit.hexsha)
    except git.GitCommandError as error:
        raise ApplyError(f'git checkout of {commit.hexsha} in '
                         f'{repo.working_tree_dir} failed: '
                         f'{git_message(error)}') from None


def missing_blobs(repo):
    """Return deleted tracked paths whose content the repository lacks.

    Some mirrors omit large blobs (pygeoapi's test databases, for one), so
    git cannot check those files out. They show up as deleted, but they
    are not changes anyone made.
    """

    paths = set()
    for diff in repo.index.diff(None):
        if not diff.deleted_file:
            continue
        try:
            repo.git.cat_file('-e', diff.a_blob.hexsha)
        except git.GitCommandError:
            paths.add(diff.a_path)
    return paths


# State record.

def state_path(repo):
    return Path(repo.git_dir) / STATE_NAME


def load_state(repo):
    try:
        return json.loads(state_path(repo).read_text())
    except FileNotFoundError:
        return None


def file_digest(path):
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


# Untracked files that `pip install CHECKOUT` writes into the checkout.
# A checkout built from an sdist has no .gitignore to hide them.
BUILD_PRODUCT_PATTERN = re.compile(
    r'^(build|dist|\.eggs)/|(^|/)[^/]+\.egg-info/|(^|/)__pycache__/')


def is_build_product(path):
    return BUILD_PRODUCT_PATTERN.search(path) is not None


def foreign_changes(repo, state):
    """List changed paths of the work tree that apply.py did not write."""

    if not repo.is_dirty(untracked_files=True):
        return []

    changed = {diff.a_path for diff in repo.index.diff(None)}
    changed |= {diff.a_path for diff in repo.index.diff('HEAD')}
    changed |= {path for path in repo.untracked_files
                if not is_build_product(path)}
    changed -= missing_blobs(repo)

    recorded = (state or {}).get('files', {})
    foreign = []
    root = Path(repo.working_tree_dir)
    for path in sorted(changed):
        expected = recorded.get(path, {}).get('sha256')
        if expected is None or file_digest(root / path) != expected:
            foreign.append(path)
    return foreign


def dirty_error(repo, paths):
    listing = '\n'.join(f'  {path}' for path in paths)
    return ApplyError(
        f'{repo.working_tree_dir} has changes that apply.py did not '
        f'make:\n{listing}\nCommit, stash or discard them (for example '
        f'git -C {repo.working_tree_dir} stash --include-untracked), then '
        f'run apply.py again.')


# Planning: decide every step before writing anything.

@dataclasses.dataclass
class Plan:
    """The steps one run takes, decided before anything is written."""

    version: str
    checkout: bool
    copies: list = dataclasses.field(default_factory=list)
    patches: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    @property
    def changes(self):
        return (self.checkout or any(action != 'in place'
                                     for _, action in self.copies)
                or any(status == 'apply' for _, status, _ in self.patches))


def read_planned(repo, commit, checkout, path):
    """Return the bytes of `path` as the run starts patching, or None."""

    if checkout:
        try:
            return (commit.tree / path).data_stream.read()
        except KeyError:
            return None
    try:
        return (Path(repo.working_tree_dir) / path).read_bytes()
    except FileNotFoundError:
        return None


def read_version(source_bytes, ref):
    """Return `__version__` from pygeoapi/__init__.py without importing."""

    if source_bytes is None:
        raise ApplyError(f'{VERSION_PATH} is missing at ref {ref!r}, so the '
                         f'source is not a pygeoapi repository. Check '
                         f'--source.')
    for node in ast.parse(source_bytes).body:
        if (isinstance(node, ast.Assign)
                and any(getattr(target, 'id', None) == '__version__'
                        for target in node.targets)
                and isinstance(node.value, ast.Constant)):
            return node.value.value
    raise ApplyError(f'{VERSION_PATH} at ref {ref!r} sets no __version__')


def overlay_files(overlay_dir):
    files = sorted(
        path.relative_to(overlay_dir).as_posix()
        for path in overlay_dir.rglob('*')
        if path.is_file() and '__pycache__' not in path.parts)
    if not files:
        raise ApplyError(f'{overlay_dir} contains no files to copy. Pass '
                         f'--overlay with the folder of the overlay tree')
    return files


def check_patch(diff_text, planned):
    """Return 'apply', 'already applied' or git's error for one patch.

    `planned` maps each path of the patch to its bytes. git apply runs
    in a scratch repository containing only those files, so the check reads
    the tree as the run will leave it before patching.
    """

    with tempfile.TemporaryDirectory() as scratch:
        scratch_repo = git.Repo.init(scratch)
        for path, content in planned.items():
            target = Path(scratch) / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        patch_file = Path(scratch_repo.git_dir) / 'check.diff'
        patch_file.write_text(diff_text)
        try:
            scratch_repo.git.apply('--check', str(patch_file))
            return 'apply'
        except git.GitCommandError as error:
            message = git_message(error)
        try:
            scratch_repo.git.apply('--check', '--reverse', str(patch_file))
            return 'already applied'
        except git.GitCommandError:
            return message


def make_plan(repo, commit, ref, options, state):
    """Decide the checkout, copies and patches of one run.

    :raises ApplyError: for a dirty tree, an unsupported release or a
        patch that does not apply, before anything is written
    """

    foreign = foreign_changes(repo, state)
    if foreign:
        raise dirty_error(repo, foreign)

    checkout = repo.head.commit != commit
    if checkout and state and (state.get('files') or state.get('patches')):
        raise ApplyError(
            f'{repo.working_tree_dir} contains apply.py changes for ref '
            f'{state["ref"]!r}, not {ref!r}. Run apply.py --revert --dest '
            f'{repo.working_tree_dir} first, or pass another --dest.')

    manifest = load_manifest(options.patches)
    version = read_version(
        read_planned(repo, commit, checkout, VERSION_PATH), ref)
    supported = manifest.get('supported', '>=0.0.0')
    if not version_matches(version, supported):
        raise ApplyError(f'pygeoapi {version} (ref {ref!r}) is outside '
                         f'the supported releases {supported}. Pass a '
                         f'newer --ref.')
    plan = Plan(version=version, checkout=checkout)

    for path in overlay_files(options.overlay):
        ours = (options.overlay / path).read_bytes()
        current = read_planned(repo, commit, checkout, path)
        if current == ours:
            plan.copies.append((path, 'in place'))
        elif tracked(commit, path):
            plan.copies.append((path, 'replace'))
        else:
            plan.copies.append((path, 'add'))

    # A tests patch from an earlier --tests run stays applied until
    # --revert, so it is checked like a requested one.
    applied_before = {record['file']
                      for record in (state or {}).get('patches', [])}
    # NOTE: each patch is checked against the tree before any patch runs,
    # so two patches applied in one run must not change the same file.
    failures = []
    for entry in manifest.get('patch', []):
        name = entry['file']
        requested = options.tests or name in applied_before
        if entry['group'] == 'tests' and not requested:
            plan.patches.append((name, 'skip', 'tests group, needs --tests'))
            continue
        if not version_matches(version, entry['releases']):
            plan.patches.append(
                (name, 'skip', 'for other releases'))
            continue
        diff_text = (options.patches / name).read_text()
        planned = {}
        for path in patch_paths(diff_text):
            planned[path] = read_planned(repo, commit, checkout, path)
        missing = [path for path, content in planned.items()
                   if content is None]
        if missing:
            reason = f'{missing[0]} is not in this checkout'
            if options.source == SDIST_SOURCE:
                reason += ' (sdists do not ship it)'
            plan.patches.append((name, 'not applicable', reason))
            continue
        status = check_patch(diff_text, planned)
        if status in ('apply', 'already applied'):
            plan.patches.append((name, status, entry['summary']))
        else:
            failures.append(f'  {name}: {status}')

    if failures:
        raise ApplyError(
            f'these patches do not apply to pygeoapi {version} (ref '
            f'{ref!r}):\n' + '\n'.join(failures) + '\nNothing was written. '
            f'Regenerate the patch from a checkout of this release, or '
            f'narrow its releases in {options.patches / MANIFEST_NAME}.')
    return plan


def tracked(commit, path):
    try:
        commit.tree / path
        return True
    except KeyError:
        return False


# Writing, verifying and reverting.

def carry_out(repo, commit, plan, options, state):
    """Check out, copy and patch as `plan` lists, and record the state."""

    root = Path(repo.working_tree_dir)
    if plan.checkout:
        checkout_commit(repo, commit)
        state = None

    state = state or {'files': {}, 'patches': []}
    state['ref'] = options.ref
    state['commit'] = commit.hexsha
    files = state['files']

    for path, action in plan.copies:
        if action == 'in place':
            continue
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(options.overlay / path, target)
        previous = files.get(path, {}).get('action')
        files[path] = {'action': previous or
                       ('replaced' if action == 'replace' else 'added')}

    for name, status, _ in plan.patches:
        if status != 'apply':
            continue
        diff_text = (options.patches / name).read_text()
        repo.git.apply(str(options.patches / name))

        # The diff text itself goes into the state, so --revert still
        # works after patches/ changes.
        state['patches'].append({'file': name, 'diff': diff_text})
        for path in patch_paths(diff_text):
            files.setdefault(path, {'action': 'patched'})

    for path, record in files.items():
        record['sha256'] = file_digest(root / path)
    state_path(repo).write_text(json.dumps(state, indent=2) + '\n')


def verify(repo, overlay_dir):
    """Check that the overlay compiles and the registry names our class."""

    root = Path(repo.working_tree_dir)
    with tempfile.TemporaryDirectory() as scratch:
        for path in overlay_files(overlay_dir):
            if not path.endswith('.py'):
                continue

            # cfile keeps the bytecode out of the checkout's work tree.
            try:
                py_compile.compile(str(root / path), doraise=True,
                                   cfile=str(Path(scratch) / 'out.pyc'))
            except py_compile.PyCompileError as error:
                raise ApplyError(f'{path} does not compile: {error.msg}. '
                                 f'Fix it in overlay/.') from None

    registered = registered_manager(root / REGISTRY_PATH)
    if registered != MANAGER_CLASS:
        raise ApplyError(
            f"{REGISTRY_PATH} maps PLUGINS['process_manager']"
            f"['{MANAGER_NAME}'] to {registered!r}, not {MANAGER_CLASS}. "
            f'Add a patch for this release to patches/.')
    return registered


def registered_manager(registry):
    """Return PLUGINS['process_manager']['MongoDB'] read with ast."""

    for node in ast.parse(registry.read_bytes()).body:
        if not (isinstance(node, ast.Assign)
                and any(getattr(target, 'id', None) == 'PLUGINS'
                        for target in node.targets)):
            continue
        plugins = ast.literal_eval(node.value)
        return plugins.get('process_manager', {}).get(MANAGER_NAME)
    return None


def revert(repo, options):
    """Undo the copies and patches that the state record lists."""

    state = load_state(repo)
    if state is None:
        print(f'nothing to revert: apply.py has not changed '
              f'{repo.working_tree_dir}')
        return

    # Changes that apply.py did not make stop the revert, because
    # restoring its files would discard them.
    foreign = foreign_changes(repo, state)
    if foreign:
        raise dirty_error(repo, foreign)

    root = Path(repo.working_tree_dir)
    with tempfile.NamedTemporaryFile('w', suffix='.diff') as patch_file:
        for record in reversed(state['patches']):
            patch_file.seek(0)
            patch_file.truncate()
            patch_file.write(record['diff'])
            patch_file.flush()
            try:
                repo.git.apply('--check', '--reverse', patch_file.name)
            except git.GitCommandError as error:
                raise ApplyError(
                    f'{record["file"]} no longer reverses cleanly: '
                    f'{git_message(error)}. Nothing was reverted. '
                    f'Restore the checkout with git checkout.') from None
        for record in reversed(state['patches']):
            patch_file.seek(0)
            patch_file.truncate()
            patch_file.write(record['diff'])
            patch_file.flush()
            if not options.check:
                repo.git.apply('--reverse', patch_file.name)
            print(f'{verb(options, "reversed", "reverse")} {record["file"]}')

    head = repo.head.commit
    for path, record in sorted(state['files'].items()):
        if record['action'] == 'patched':
            continue
        target = root / path
        if record['action'] == 'replaced':
            if not options.check:
                target.write_bytes((head.tree / path).data_stream.read())
            print(f'{verb(options, "restored", "restore")} {path}')
        else:
            if not options.check:
                target.unlink()
                remove_empty_parents(target.parent, root)
            print(f'{verb(options, "removed", "remove")} {path}')

    if not options.check:
        state_path(repo).unlink()
    print(f'{repo.working_tree_dir} is back at ref {state["ref"]}'
          if not options.check else 'nothing was written (--check)')


def remove_empty_parents(folder, root):
    while folder != root and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def verb(options, past, present):
    return f'would {present}' if options.check else past


# Reporting and the command line.

def report(plan, options):
    """Print the steps of `plan` (or the would-be steps with --check)."""

    would = 'would ' if options.check else ''
    if plan.checkout:
        print(f'{would}check out {options.ref}')
    for path, action in plan.copies:
        if action == 'in place':
            print(f'already in place: {path}')
        elif action == 'replace':
            print(f"{would}copy {path} (replaces pygeoapi's file)")
        else:
            print(f'{would}copy {path} (new file)')
    skipped = {}
    for name, status, reason in plan.patches:
        if status == 'apply':
            print(f'{would}apply {name}: {reason}')
        elif status == 'already applied':
            print(f'already applied {name}')
        elif status == 'not applicable':
            print(f'not applicable {name}: {reason}')
        else:
            skipped.setdefault(reason, []).append(name)

    # Skips are grouped by reason, because most patches are for other
    # releases and one line each would bury the steps that ran.
    for reason, names in skipped.items():
        print(f'skipped ({reason}): {", ".join(names)}')


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description='Patch a pygeoapi checkout to use the MongoDB manager '
                    'of this project.')
    parser.add_argument(
        '--source', default=os.environ.get(SOURCE_VARIABLE, DEFAULT_SOURCE),
        help=f'git URL or local repository (bare or not) of pygeoapi, or '
             f'"{SDIST_SOURCE}" for the PyPI sdist of --ref (default: '
             f'${SOURCE_VARIABLE}, else {DEFAULT_SOURCE})')
    parser.add_argument(
        '--ref', default=PINNED_REF,
        help=f'tag, branch or commit to check out (default: {PINNED_REF})')
    parser.add_argument(
        '--dest', type=Path,
        help='checkout folder, reused when it exists (default: '
             'build/pygeoapi-REF next to apply.py)')
    parser.add_argument(
        '--tests', action='store_true',
        help="also apply the tests group: pygeoapi's own test configs "
             'use the MongoDB manager at $PYGEOAPI_MONGODB_URI')
    parser.add_argument(
        '--check', action='store_true',
        help='report what would happen and write nothing')
    parser.add_argument(
        '--revert', action='store_true',
        help='undo what apply.py changed in --dest')
    parser.add_argument(
        '--overlay', type=Path, default=OVERLAY_DIR,
        help='folder copied into the checkout (default: overlay/)')
    parser.add_argument(
        '--patches', type=Path, default=PATCHES_DIR,
        help=f'folder of the patches and {MANIFEST_NAME} '
             f'(default: patches/)')
    options = parser.parse_args(argv)
    if options.dest is None:
        options.dest = ROOT / 'build' / f'pygeoapi-{options.ref}'
    options.dest = options.dest.absolute()
    return options


def run(options):
    """Apply, check or revert, as `options` request."""

    if options.revert:
        try:
            repo = git.Repo(options.dest)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise ApplyError(f'{options.dest} is not a git checkout. Pass '
                             f'the --dest that apply.py wrote.') from None
        revert(repo, options)
        return

    repo, commit, staging = open_checkout(
        options.source, options.ref, options.dest)
    try:
        state = load_state(repo)
        plan = make_plan(repo, commit, options.ref, options, state)
    except ApplyError:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        raise

    # A fresh clone counts as part of the run: --check drops it, and a
    # real run moves it into place only now that every check passed.
    skipped_blobs = missing_blobs(repo)
    fresh = staging is not None
    if fresh and options.check:
        shutil.rmtree(staging, ignore_errors=True)
    elif fresh:
        staging.rename(options.dest)
        repo = git.Repo(options.dest)
        commit = repo.commit(commit.hexsha)

    print(f'pygeoapi {plan.version}: ref {options.ref} '
          f'({commit.hexsha[:10]}) in {options.dest}')
    if fresh:
        source = options.source
        if source == SDIST_SOURCE:
            source = f'the PyPI sdist of pygeoapi {options.ref}'
        print(f'{"would clone" if options.check else "cloned"} {source}')
    report(plan, options)
    if skipped_blobs:
        print(f'NOTE: the source lacks the content of '
              f'{len(skipped_blobs)} tracked files, left out of the '
              f'checkout: {", ".join(sorted(skipped_blobs))}')

    if options.check:
        print('nothing was written (--check)')
        return
    if plan.changes:
        carry_out(repo, commit, plan, options, state)
    else:
        print('nothing changed: the checkout already has the overlay and '
              'patches')
    registered = verify(repo, options.overlay)
    print(f"verified: the overlay compiles and PLUGINS['process_manager']"
          f"['{MANAGER_NAME}'] is {registered}")


def main(argv=None):
    options = parse_arguments(argv)
    try:
        run(options)
    except ApplyError as error:
        print(f'apply.py: error: {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
