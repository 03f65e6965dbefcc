"""A pygeoapi configured with the MongoDB manager, for the tests.

``write_config`` writes the quick start's pygeoapi configuration (see
serve.py), with the ``echo`` test process added, and its OpenAPI
document. ``flask_client`` imports pygeoapi's Flask app on
them and returns its test client, so requests go through pygeoapi's own
routes and API functions of the installed release. The Flask app reads
its configuration once per process, at import.

``python -m tests.app CONFIG COUNT`` executes COUNT asynchronous echo
jobs through that app and prints their identifiers, one a line: the
concurrency tests start several of these processes at once.
"""

import json
import os
import sys
import time
from pathlib import Path

import yaml

import pygeoapi
from pygeoapi.util import yaml_load

from serve import config_text

ECHO_RESOURCE = """\
  echo:
    type: process
    processor:
      name: tests.processes.EchoProcessor
"""

ASYNC_HEADERS = {'Prefer': 'respond-async'}


def write_config(folder: Path, database: str, lease_seconds: float = 60,
                 output_dir: Path = None) -> Path:
    """Write ``config.yml`` and ``openapi.yml`` into ``folder``.

    The connection stays ``${PYGEOAPI_MONGODB_URI}``, so pygeoapi's own
    environment substitution supplies it.

    :returns: the configuration file
    """

    text = config_text(database=database,
                       lease_seconds=lease_seconds) + ECHO_RESOURCE
    if output_dir is not None:
        text = text.replace('    name: MongoDB\n',
                            f'    name: MongoDB\n'
                            f'    output_dir: {output_dir}\n')
    config_file = folder / 'config.yml'
    config_file.write_text(text)

    from pygeoapi.openapi import get_oas
    with config_file.open() as fh:
        config = yaml_load(fh)
    openapi_file = folder / 'openapi.yml'
    openapi_file.write_text(yaml.safe_dump(
        json.loads(json.dumps(get_oas(config), default=str))))
    return config_file


def flask_client(config_file: Path):
    """Return a test client of pygeoapi's Flask app on ``config_file``."""

    os.environ['PYGEOAPI_CONFIG'] = str(config_file)
    os.environ['PYGEOAPI_OPENAPI'] = str(config_file.with_name(
        'openapi.yml'))
    from pygeoapi.flask_app import APP
    APP.config['TESTING'] = True
    return APP.test_client()


def execute(client, process_id: str, inputs: dict, is_async: bool):
    """POST an execution request; return the response.

    pygeoapi 0.14 reads the mode from the body and later releases from
    the ``Prefer`` header, so an async request sends both.
    """

    body = {'inputs': inputs}
    headers = {}
    if is_async:
        body['mode'] = 'async'
        headers = ASYNC_HEADERS
    return client.post(f'/processes/{process_id}/execution',
                       json=body, headers=headers)


def job_id_of(response) -> str:
    """Return the job identifier of an execution response."""

    return response.headers['Location'].rstrip('/').rsplit('/', 1)[-1]


def wait_for_job(client, job_id: str, timeout: float = 30) -> dict:
    """Poll ``/jobs/{job_id}`` until the job ends; return its status."""

    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f'/jobs/{job_id}?f=json').get_json()
        if status['status'] not in ('accepted', 'running'):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f'job {job_id} still {status["status"]} '
                               f'after {timeout} s')
        time.sleep(0.05)


def main() -> int:
    config_file, count = Path(sys.argv[1]), int(sys.argv[2])
    client = flask_client(config_file)
    for number in range(count):
        response = execute(client, 'echo', {
            'value': f'{os.getpid()}-{number}', 'sleep': 0.05}, True)
        if response.status_code != 201:
            print(f'execute failed: {response.status_code} '
                  f'{response.get_data(as_text=True)}', file=sys.stderr)
            return 1
        print(job_id_of(response), flush=True)

    # The async jobs run in threads that are not daemons, so Python
    # waits for them to end before this process exits.
    return 0


if __name__ == '__main__':
    print(f'pygeoapi {pygeoapi.__version__}', file=sys.stderr)
    sys.exit(main())
