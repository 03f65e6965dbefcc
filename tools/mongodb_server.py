"""Provide a MongoDB-compatible server for the tests, tox and load tests.

The server comes from the first of these that is available:

1. ``PYGEOAPI_MONGODB_URI``: any server you run (MongoDB, a replica set,
   Atlas). Nothing is started and nothing is stopped.
2. ``mongod`` on ``PATH``, started on a free port of 127.0.0.1 with a
   temporary data directory.
3. ``ferretdb`` on ``PATH`` (FerretDB 1.x), started the same way with its
   SQLite handler.
4. FerretDB v1.24.2 built from the Go module proxy with the ``go``
   toolchain, cached under ``~/.cache/pygeoapi-mongodb-manager``.

If none of them is available, ``ServerUnavailableError`` explains how to
provide one. Use it from Python as ``with provide_server() as uri:``, or
from the shell::

    python tools/mongodb_server.py run -- tox       # start, run, stop
    python tools/mongodb_server.py serve            # until Ctrl-C
    python tools/mongodb_server.py build            # FerretDB only

``run`` exports the URI to the command as ``PYGEOAPI_MONGODB_URI``, so
every tox env and test in it shares the one server.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

URI_VARIABLE = 'PYGEOAPI_MONGODB_URI'
FERRETDB_MODULE = 'github.com/FerretDB/FerretDB'
FERRETDB_VERSION = 'v1.24.2'
CACHE_DIR = Path(os.environ.get(
    'XDG_CACHE_HOME', Path.home() / '.cache')) / 'pygeoapi-mongodb-manager'
START_TIMEOUT = 30  # seconds until a started server must accept clients

HOW_TO_PROVIDE = f"""\
No MongoDB-compatible server is available. Provide one of:
  - {URI_VARIABLE}=mongodb://user:password@host:27017/ (a running server)
  - mongod on PATH (MongoDB Community Server)
  - ferretdb on PATH (FerretDB 1.x)
  - the Go toolchain (go on PATH), so that FerretDB {FERRETDB_VERSION}
    can be built from the Go module proxy"""


class ServerUnavailableError(RuntimeError):
    """No server could be found, started or built."""


def redacted(uri: str) -> str:
    """Return ``uri`` with its password replaced by ``***``."""

    return re.sub(r'^(mongodb(?:\+srv)?://[^:@/]*):[^@/]*@', r'\1:***@',
                  uri)


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on now."""

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    """Wait until ``port`` accepts connections or ``process`` exits."""

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailableError(
                f'the server exited with code {process.returncode} before '
                f'it listened on port {port}; its log is {log}:\n'
                + log.read_text(errors='replace')[-2000:])
        with socket.socket() as sock:
            if sock.connect_ex(('127.0.0.1', port)) == 0:
                return
        time.sleep(0.1)
    process.kill()
    raise ServerUnavailableError(
        f'the server did not listen on port {port} within '
        f'{START_TIMEOUT} s; its log is {log}')


def stop_process(process: subprocess.Popen, timeout: float = 10) -> int:
    """Terminate ``process``, kill it after ``timeout`` s; return its code."""

    process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def build_ferretdb() -> Path:
    """Build FerretDB from the Go module proxy and return the binary.

    A plain ``go install FerretDB/cmd/ferretdb@v1.24.2`` builds a binary
    that panics at start, because FerretDB reads its version from
    ``build/version/version.txt``, which only its release process writes.
    So the module is downloaded, copied, given that file as FerretDB's
    own panic message suggests, and built from the copy.
    """

    binary = CACHE_DIR / f'ferretdb-{FERRETDB_VERSION}' / 'ferretdb'
    if binary.exists():
        return binary

    go = shutil.which('go')
    if go is None:
        raise ServerUnavailableError(HOW_TO_PROVIDE)

    print(f'building FerretDB {FERRETDB_VERSION} with {go} '
          f'(about a minute, once)', file=sys.stderr)
    download = subprocess.run(
        [go, 'mod', 'download', '-json',
         f'{FERRETDB_MODULE}@{FERRETDB_VERSION}'],
        capture_output=True, text=True)
    if download.returncode != 0:
        raise ServerUnavailableError(
            f'go mod download {FERRETDB_MODULE}@{FERRETDB_VERSION} '
            f'failed:\n{download.stdout}{download.stderr}')
    module_dir = Path(json.loads(download.stdout)['Dir'])

    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / 'ferretdb'
        shutil.copytree(module_dir, source)
        for path in source.rglob('*'):
            path.chmod(path.stat().st_mode | 0o200)
        version_file = source / 'build' / 'version' / 'version.txt'
        version_file.write_text(FERRETDB_VERSION + '\n')
        partial = binary.with_suffix('.partial')
        build = subprocess.run(
            [go, 'build', '-o', str(partial), './cmd/ferretdb'],
            cwd=source, capture_output=True, text=True)
        if build.returncode != 0:
            raise ServerUnavailableError(
                f'go build of FerretDB failed:\n{build.stderr}')
        partial.rename(binary)
    return binary


def server_command(data_dir: Path, port: int) -> list:
    """Return the command that starts a local server, building if needed.

    :raises ServerUnavailableError: if no server binary can be had
    """

    mongod = shutil.which('mongod')
    if mongod:
        return [mongod, '--bind_ip', '127.0.0.1', '--port', str(port),
                '--dbpath', str(data_dir), '--quiet']

    ferretdb = shutil.which('ferretdb') or str(build_ferretdb())
    # Telemetry and the debug HTTP listener are off, so the server sends
    # nothing anywhere and listens only on the one loopback port.
    return [ferretdb, '--handler=sqlite',
            f'--sqlite-url=file:{data_dir}/',
            f'--state-dir={data_dir}',
            f'--listen-addr=127.0.0.1:{port}',
            '--debug-addr=-', '--telemetry=disable',
            '--log-level=warn']


@contextlib.contextmanager
def provide_server():
    """Yield the URI of a server, starting one when none is configured.

    :raises ServerUnavailableError: with the ways to provide one
    """

    uri = os.environ.get(URI_VARIABLE)
    if uri:
        yield uri
        return

    with tempfile.TemporaryDirectory(prefix='pygeoapi-mongodb-') as tmp:
        data_dir = Path(tmp)
        port = free_port()
        command = server_command(data_dir, port)
        log = data_dir / 'server.log'
        with log.open('wb') as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_port(port, process, log)
            print(f'started {Path(command[0]).name} on 127.0.0.1:{port}',
                  file=sys.stderr)
            yield f'mongodb://127.0.0.1:{port}/'
        finally:
            stop_process(process)


def wait_for_stop(uri: str = None) -> int:
    """Wait for Ctrl-C or SIGTERM; return 0, or 1 if the server died.

    With ``uri``, the server that this process started, its port is
    checked every second, so that a crashed server ends the command.
    """

    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    port = int(uri.rstrip('/').rsplit(':', 1)[1]) if uri else None
    while signal.sigtimedwait(stop, 1) is None:
        if port is None:
            continue
        with socket.socket() as sock:
            if sock.connect_ex(('127.0.0.1', port)) != 0:
                print(f'error: the server on 127.0.0.1:{port} stopped '
                      f'accepting connections', file=sys.stderr)
                return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    run = commands.add_parser(
        'run', help=f'run a command with {URI_VARIABLE} set to a server')
    run.add_argument('cmd', nargs=argparse.REMAINDER,
                     help='the command, after --')
    commands.add_parser('serve', help='start a server and wait for Ctrl-C')
    commands.add_parser('build', help='build FerretDB and print its path')
    args = parser.parse_args(argv)

    try:
        if args.command == 'build':
            print(build_ferretdb())
            return 0

        started_here = not os.environ.get(URI_VARIABLE)
        with provide_server() as uri:
            if args.command == 'serve':
                print(f'{URI_VARIABLE}={uri}', flush=True)
                return wait_for_stop(uri if started_here else None)

            cmd = args.cmd[1:] if args.cmd[:1] == ['--'] else args.cmd
            if not cmd:
                parser.error('run needs a command after --')
            env = dict(os.environ, **{URI_VARIABLE: uri})
            return subprocess.call(cmd, env=env)
    except ServerUnavailableError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
