"""Quick start: serve a patched pygeoapi with the MongoDB manager.

One command applies the patch set to a pygeoapi release and installs it
into a virtual environment under ``build/``. The release is 0.24.0, the
one apply.py pins, from its PyPI sdist unless ``--source`` names another
source. gunicorn then serves it on 127.0.0.1 with the ``hello-world``
process::

    python serve.py                 # http://127.0.0.1:5000, Ctrl-C stops
    python serve.py --ref 0.21.0 --port 5050 --workers 4

Jobs go to the server in ``PYGEOAPI_MONGODB_URI``. When it is unset, a
throwaway local server is started (see tools/mongodb_server.py) and
stopped with pygeoapi, so its jobs are gone afterwards.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / 'tools'))

import mongodb_server  # noqa: E402

PINNED_REF = '0.24.0'  # apply.PINNED_REF; apply.py needs GitPython
READY_TIMEOUT = 60  # seconds until gunicorn responds to its first request

# Releases that need older libraries than pip picks today, because
# 0.14 and 0.15 predate pydantic 2 and Werkzeug 2.3.
PINS = {
    '0.14.0': ['flask<2.3', 'pydantic<2', 'werkzeug<2.3'],
    '0.15.0': ['pydantic<2'],
}

CONFIG_TEMPLATE = """\
server:
  bind: {host: 127.0.0.1, port: PORT}
  url: http://127.0.0.1:PORT
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  gzip: false
  language: en-US
  languages: [en-US]
  cors: false
  pretty_print: true
  limit: 10
  limits: {default_items: 10, max_items: 50}
  map:
    url: https://tile.openstreetmap.org/{z}/{x}/{y}.png
    attribution: OpenStreetMap contributors
  manager:
    name: MongoDB
    connection: ${PYGEOAPI_MONGODB_URI}
    lease_seconds: LEASE
logging:
  level: LOGLEVEL
metadata:
  identification:
    title: pygeoapi with the MongoDB job manager
    description: OGC API - Processes jobs kept in MongoDB
    keywords: [processes, jobs]
    keywords_type: theme
    terms_of_service: https://creativecommons.org/licenses/by/4.0/
    url: http://127.0.0.1:PORT
  license:
    name: CC-BY 4.0 license
    url: https://creativecommons.org/licenses/by/4.0/
  provider:
    name: pygeoapi MongoDB job manager
    url: http://127.0.0.1:PORT
  contact:
    name: Operator
    position: Operator
    address: none
    city: none
    stateorprovince: none
    postalcode: none
    country: none
    phone: none
    fax: none
    email: operator@example.org
    url: http://127.0.0.1:PORT
    hours: none
    instructions: none
    role: pointOfContact
resources:
  hello-world:
    type: process
    processor:
      name: HelloWorld
"""


def config_text(port: int = 5000, database: str = None,
                lease_seconds: float = 60, log_level: str = 'ERROR') -> str:
    """Return a pygeoapi configuration that uses the MongoDB manager.

    The connection stays ``${PYGEOAPI_MONGODB_URI}``, for pygeoapi's own
    environment substitution to fill in. Without ``database``, the jobs
    go to the URI's database or the manager's default.
    """

    replacements = {'PORT': str(port), 'LEASE': str(lease_seconds),
                    'LOGLEVEL': log_level}
    text = CONFIG_TEMPLATE
    for name, value in replacements.items():
        text = text.replace(name, value)
    if database:
        text = text.replace('    lease_seconds:',
                            f'    database: {database}\n    lease_seconds:')
    return text


def find_python(ref: str, requested: str = None) -> str:
    """Return an interpreter that the release runs on.

    pygeoapi 0.22 and newer need Python 3.12, older releases run on 3.11.
    """

    if requested:
        return requested
    release = re.match(r'0\.(\d+)\.', ref)
    if (release and int(release.group(1)) < 22) or sys.version_info >= (
            3, 12):
        return sys.executable
    for name in ('python3.12', 'python3.13'):
        path = shutil.which(name)
        if path and subprocess.run([path, '--version'],
                                   capture_output=True).returncode == 0:
            return path
    raise SystemExit(
        f'error: pygeoapi {ref} needs Python 3.12 or newer, and none was '
        f'found on PATH: pass --python /path/to/python3.12, or use '
        f'--ref 0.21.0 with Python 3.11')


def run(command: list, **kwargs) -> None:
    """Run a setup step, stopping with its exit code if it fails."""

    result = subprocess.run(command, **kwargs)
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def install(args) -> Path:
    """Apply the patch set and install it; return the venv's python.

    apply.py runs in the new virtual environment, so that this script
    needs nothing beyond the standard library to start.
    """

    venv = ROOT / 'build' / f'venv-{args.ref}'
    python = venv / 'bin' / 'python'
    pip = [str(python), '-m', 'pip', 'install', '--quiet',
           '--disable-pip-version-check']
    if not python.exists():
        base_python = find_python(args.ref, args.python)
        print(f'creating {venv} with {base_python}')
        run([base_python, '-m', 'venv', str(venv)])
    run(pip + ['gitpython'])

    checkout = ROOT / 'build' / f'pygeoapi-{args.ref}'
    run([str(python), str(ROOT / 'apply.py'), '--source', args.source,
         '--ref', args.ref, '--dest', str(checkout)])
    print(f'installing {checkout} into {venv}')
    run(pip + ['gunicorn', 'pymongo', *PINS.get(args.ref, []),
               str(checkout)])
    return python


def write_site(python: Path, uri: str, args) -> tuple:
    """Write the config and OpenAPI document; return both paths."""

    site = ROOT / 'build' / f'site-{args.ref}'
    site.mkdir(parents=True, exist_ok=True)
    config = site / 'pygeoapi-config.yml'
    config.write_text(config_text(args.port, args.database))
    openapi = site / 'pygeoapi-openapi.yml'
    script = (
        'import json, sys, yaml\n'
        'from pygeoapi.openapi import get_oas\n'
        'from pygeoapi.util import yaml_load\n'
        'with open(sys.argv[1]) as fh:\n'
        '    config = yaml_load(fh)\n'
        'document = json.loads(json.dumps(get_oas(config), default=str))\n'
        'with open(sys.argv[2], "w") as fh:\n'
        '    yaml.safe_dump(document, fh)\n')
    # pygeoapi substitutes ${PYGEOAPI_MONGODB_URI} when it reads the
    # config, for the OpenAPI document too.
    run([str(python), '-c', script, str(config), str(openapi)],
        env=dict(os.environ, **{mongodb_server.URI_VARIABLE: uri}))
    return config, openapi


def wait_until_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f'error: gunicorn exited with code '
                             f'{process.returncode} before serving {url}')
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f'error: {url} did not respond within '
                     f'{READY_TIMEOUT} s')


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def serve(python: Path, uri: str, args) -> int:
    """Serve pygeoapi until gunicorn exits; return its exit code."""

    config, openapi = write_site(python, uri, args)
    env = dict(os.environ, PYGEOAPI_CONFIG=str(config),
               PYGEOAPI_OPENAPI=str(openapi),
               **{mongodb_server.URI_VARIABLE: uri})
    gunicorn = subprocess.Popen(
        [str(python), '-m', 'gunicorn', '--bind', f'127.0.0.1:{args.port}',
         '--workers', str(args.workers), '--threads', '4',
         'pygeoapi.flask_app:APP'],
        env=env, stdin=subprocess.DEVNULL)
    base_url = f'http://127.0.0.1:{args.port}'
    try:
        wait_until_ready(f'{base_url}/processes?f=json', gunicorn)
        print(f'Serving pygeoapi {args.ref} with the MongoDB manager on '
              f'{base_url}, jobs at {mongodb_server.redacted(uri)}. Try:\n'
              f'  curl -X POST -H "Content-Type: application/json" '
              f'-H "Prefer: respond-async" '
              f'-d \'{{"inputs": {{"name": "World"}}}}\' '
              f'{base_url}/processes/hello-world/execution -i\n'
              f'Ctrl-C stops it.', flush=True)
        return gunicorn.wait()
    finally:
        mongodb_server.stop_process(gunicorn, timeout=30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--ref', default=PINNED_REF,
                        help=f'pygeoapi release, tag or branch '
                             f'(default: {PINNED_REF})')
    parser.add_argument('--source', default='sdist',
                        help='where the release comes from: "sdist" for '
                             'PyPI, or a git URL or repository '
                             '(default: sdist)')
    parser.add_argument('--port', type=int, default=5000,
                        help='TCP port on 127.0.0.1 (default: 5000)')
    parser.add_argument('--workers', type=int, default=2,
                        help='gunicorn worker processes (default: 2)')
    parser.add_argument('--database',
                        help='MongoDB database of the jobs (default: the '
                             "URI's database, else job_manager_pygeoapi)")
    parser.add_argument('--python',
                        help='interpreter for the virtual environment '
                             '(default: this one, or python3.12+ on PATH '
                             'for pygeoapi 0.22 and newer)')
    args = parser.parse_args(argv)

    python = install(args)

    # SIGTERM stops it the way Ctrl-C does, so both servers are stopped.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        with mongodb_server.provide_server() as uri:
            return serve(python, uri, args)
    except KeyboardInterrupt:
        print('stopped', flush=True)
        return 0
    except mongodb_server.ServerUnavailableError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
