"""Run pygeoapi's own process and manager tests with our MongoDB manager.

The command checks out a pygeoapi ref from ``PYGEOAPI_GIT_SOURCE`` with
``apply.py --tests``: the overlay, the core patches and the tests group,
which points pygeoapi's test configs at ``PYGEOAPI_MONGODB_URI``. It then
installs that checkout and the test requirements into the running Python
with pip, runs pygeoapi's ``tests/api/test_processes.py`` and its manager
tests from inside the checkout, and exits with pytest's status::

    python tools/upstream_tests.py 0.21.0
    python tools/upstream_tests.py master -x -k execute

Arguments after REF go to pytest. When ``PYGEOAPI_MONGODB_URI`` is unset,
a server is started for the run as ``tools/mongodb_server.py`` does.
pygeoapi 0.22.0 and later need Python 3.12, so run it with such an
interpreter (a venv is best, because pip installs into it).
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from mongodb_server import URI_VARIABLE, ServerUnavailableError
from mongodb_server import provide_server

ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = ROOT / 'tools'
APPLY_SCRIPT = ROOT / 'apply.py'
SOURCE_VARIABLE = 'PYGEOAPI_GIT_SOURCE'
DNS_PLUGIN = 'pytest_offline_dns'

# apply.py needs GitPython and our manager needs pymongo (pygeoapi's
# requirements.txt lists neither). pytest-env reads the `env` section of
# pygeoapi's pytest.ini, and the rest is what its tests import.
TEST_REQUIREMENTS = [
    'GitPython', 'pymongo>=4', 'pytest', 'pytest-env', 'starlette',
    'httpx', 'pygeometa',
]

PROCESS_TESTS = 'tests/api/test_processes.py'

# pygeoapi 0.22.0 moved tests/test_manager.py into tests/manager/.
MANAGER_TESTS = ('tests/manager', 'tests/test_manager.py')

# Files of tests/manager/ that do not test the configured manager.
EXCLUDED_TESTS = {
    'tests/manager/test_postgresql_manager.py':
        'needs a PostgreSQL server and tests the PostgreSQL manager',
    'tests/manager/test_tinydb_manager_for_parallel_requests.py':
        'reads the jobs back from a TinyDB file, so it tests the TinyDB '
        'manager (before 0.22 this file is in tests/ and not selected)',
}


class UpstreamTestsError(Exception):
    """A failure before pytest runs, with a message naming value and fix."""


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description="Run pygeoapi's own process and manager tests with "
                    'the MongoDB manager of this project.')
    parser.add_argument(
        '--dest', type=Path,
        help='checkout folder, reused when it exists (default: '
             'build/upstream-REF next to apply.py)')
    parser.add_argument(
        '--no-install', action='store_true',
        help='skip the pip install, for a checkout installed by an '
             'earlier run')
    parser.add_argument(
        'ref', metavar='REF',
        help='pygeoapi tag, branch or commit, e.g. 0.21.0 or master')
    parser.add_argument(
        'pytest_args', nargs=argparse.REMAINDER, metavar='PYTEST_ARG',
        help='passed to pytest after the selected tests')
    options = parser.parse_args(argv)
    if options.dest is None:
        name = re.sub(r'[^A-Za-z0-9._-]', '-', options.ref)
        options.dest = ROOT / 'build' / f'upstream-{name}'
    options.dest = options.dest.absolute()
    return options


def apply_patches(source, ref, dest):
    """Check out `ref` into `dest` and patch it with apply.py --tests."""

    command = [sys.executable, str(APPLY_SCRIPT), '--source', source,
               '--ref', ref, '--dest', str(dest), '--tests']
    if subprocess.run(command).returncode != 0:
        raise UpstreamTestsError(
            f'apply.py failed for ref {ref!r} (its error is above). Fix '
            f'that, or remove {dest} when the checkout itself is broken.')


def check_python(checkout, ref):
    """Raise when the running Python is older than the ref requires.

    pip would reject the install as well, but its message does not say
    which interpreter to use instead.
    """

    setup = (checkout / 'setup.py').read_text()
    match = re.search(r"python_requires\s*=\s*'>=\s*(\d+)\.(\d+)'", setup)
    if match is None:
        return
    required = (int(match.group(1)), int(match.group(2)))
    if sys.version_info[:2] < required:
        raise UpstreamTestsError(
            f'pygeoapi {ref} requires Python >={required[0]}.{required[1]}, '
            f'but {sys.executable} is Python '
            f'{sys.version_info[0]}.{sys.version_info[1]}. Run this command '
            f'from a venv of Python {required[0]}.{required[1]} or later.')


def install(checkout):
    """Install `checkout` (editable) and the test requirements with pip."""

    command = [sys.executable, '-m', 'pip', 'install', '--quiet',
               '--editable', str(checkout), *TEST_REQUIREMENTS]
    print(f'installing {checkout} and {", ".join(TEST_REQUIREMENTS)} '
          f'into {sys.prefix}', flush=True)
    if subprocess.run(command).returncode != 0:
        raise UpstreamTestsError(
            f'pip install of {checkout} failed (its error is above). '
            f'Check that {sys.executable} can reach the package index.')


def select_tests(checkout, ref):
    """Return the pytest arguments that select the tests to run."""

    if not (checkout / PROCESS_TESTS).is_file():
        raise UpstreamTestsError(
            f'pygeoapi {ref} has no {PROCESS_TESTS} (pygeoapi added it in '
            f'0.17.0). Pass a ref of 0.17.0 or later.')

    selection = [PROCESS_TESTS]
    for path in MANAGER_TESTS:
        if (checkout / path).exists():
            selection.append(path)
            break
    else:
        raise UpstreamTestsError(
            f'pygeoapi {ref} has neither {" nor ".join(MANAGER_TESTS)}. '
            f'Pass a ref of 0.17.0 or later.')

    for path, reason in EXCLUDED_TESTS.items():
        if (checkout / path).is_file():
            print(f'excluded {path}: {reason}')
            selection.append(f'--ignore={path}')
    return selection


def run_pytest(checkout, selection, pytest_args, uri):
    """Run pytest in `checkout` and return its exit status."""

    env = dict(os.environ)
    env[URI_VARIABLE] = uri
    env['PYTHONPATH'] = os.pathsep.join(
        filter(None, [str(TOOLS_DIR), env.get('PYTHONPATH')]))
    command = [sys.executable, '-m', 'pytest', '-p', DNS_PLUGIN,
               *selection, *pytest_args]
    print(f'running in {checkout}: {shlex.join(command)}', flush=True)
    return subprocess.run(command, cwd=checkout, env=env).returncode


def run(options):
    source = os.environ.get(SOURCE_VARIABLE)
    if not source:
        raise UpstreamTestsError(
            f'{SOURCE_VARIABLE} is not set. Set it to a git URL or local '
            f'clone of pygeoapi, e.g. '
            f'{SOURCE_VARIABLE}=https://github.com/geopython/pygeoapi.git')

    started = time.monotonic()
    apply_patches(source, options.ref, options.dest)
    check_python(options.dest, options.ref)
    if not options.no_install:
        install(options.dest)
    selection = select_tests(options.dest, options.ref)
    prepared = time.monotonic()

    with provide_server() as uri:
        status = run_pytest(options.dest, selection, options.pytest_args,
                            uri)
    finished = time.monotonic()
    print(f'pytest exited with {status} for pygeoapi {options.ref}: '
          f'{prepared - started:.0f} s to patch and install, '
          f'{finished - prepared:.0f} s to test')
    return status


def main(argv=None):
    options = parse_arguments(argv)
    try:
        return run(options)
    except (UpstreamTestsError, ServerUnavailableError) as error:
        print(f'upstream_tests.py: error: {error}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
