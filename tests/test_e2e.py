"""End-to-end test of the quick start over real HTTP on 127.0.0.1.

It runs ``serve.py`` as a user would: apply the patch set to the pinned
release, install it, serve it with gunicorn, then drives one job through
its whole life with plain HTTP requests. The first run installs pygeoapi
into ``build/`` and takes a minute or two; later runs reuse it.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'tools'))

from mongodb_server import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETUP_TIMEOUT = 900  # seconds for apply, venv and pip install on a cold cache
REF = os.environ.get('PYGEOAPI_E2E_REF')  # default: serve.py's pinned ref


def request(method: str, url: str, body: dict = None, headers: dict = None):
    """Send one HTTP request; return (status, headers, body bytes)."""

    data = json.dumps(body).encode() if body is not None else None
    http_request = urllib.request.Request(url, data=data, method=method,
                                          headers=dict(headers or {}))
    if data is not None:
        http_request.add_header('Content-Type', 'application/json')
    try:
        with urllib.request.urlopen(http_request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(params=['given-server', 'throwaway-server'])
def quick_start(request):
    """Start ``serve.py``; yield its base URL; stop it afterwards.

    With ``PYGEOAPI_MONGODB_URI`` set, the jobs go to the session's
    server. Without it, ``serve.py`` starts a throwaway server itself.
    """

    port = free_port()
    command = [sys.executable, str(ROOT / 'serve.py'), '--port', str(port)]
    if REF:
        command += ['--ref', REF]
    environment = dict(os.environ)
    if request.param == 'given-server':
        environment['PYGEOAPI_MONGODB_URI'] = request.getfixturevalue(
            'mongodb_uri')
        command += ['--database', f'test_e2e_{uuid.uuid4().hex[:12]}']
    else:
        environment.pop('PYGEOAPI_MONGODB_URI', None)
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=environment)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line)
                                     for line in process.stdout],
                     daemon=True).start()

    output = []
    deadline = time.monotonic() + SETUP_TIMEOUT
    while not any(line.startswith('Serving') for line in output):
        try:
            output.append(lines.get(timeout=max(0.1, deadline
                                                - time.monotonic())))
        except queue.Empty:
            process.kill()
            pytest.fail('serve.py did not start:\n' + ''.join(output))
        if process.poll() is not None and lines.empty():
            pytest.fail(f'serve.py exited with {process.returncode}:\n'
                        + ''.join(output))

    yield f'http://127.0.0.1:{port}'

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0


def test_quick_start_job_lifecycle(quick_start):
    base = quick_start
    status, headers, body = request(
        'POST', f'{base}/processes/hello-world/execution',
        {'inputs': {'name': 'Grace', 'message': 'end to end'}},
        {'Prefer': 'respond-async'})
    assert status == 201, body
    job_url = headers['Location']
    job_id = job_url.rstrip('/').rsplit('/', 1)[-1]
    assert job_url.startswith(f'{base}/jobs/')

    deadline = time.monotonic() + 30
    while True:
        status, _, body = request('GET', f'{base}/jobs/{job_id}?f=json')
        assert status == 200, body
        job = json.loads(body)
        if job['status'] not in ('accepted', 'running'):
            break
        assert time.monotonic() < deadline, f'job still {job["status"]}'
        time.sleep(0.1)
    assert job['status'] == 'successful', job

    status, _, body = request('GET', f'{base}/jobs/{job_id}/results?f=json')
    assert status == 200
    assert json.loads(body) == {'id': 'echo',
                                'value': 'Hello Grace! end to end'}

    for _ in range(2):
        status, _, body = request(
            'POST', f'{base}/processes/hello-world/execution',
            {'inputs': {'name': 'more'}})
        assert status == 200, body
    status, _, body = request('GET', f'{base}/jobs?f=json&limit=2&offset=0')
    assert status == 200
    first_page = [job['jobID'] for job in json.loads(body)['jobs']]
    status, _, body = request('GET', f'{base}/jobs?f=json&limit=2&offset=2')
    second_page = [job['jobID'] for job in json.loads(body)['jobs']]
    assert len(first_page) == 2
    assert job_id not in first_page
    assert second_page == [job_id]

    status, _, body = request('DELETE', f'{base}/jobs/{job_id}')
    assert status == 200, body
    assert json.loads(body)['status'] == 'dismissed'
    status, _, _ = request('DELETE', f'{base}/jobs/{job_id}')
    assert status == 404
    status, _, _ = request('GET', f'{base}/jobs/{job_id}?f=json')
    assert status == 404
