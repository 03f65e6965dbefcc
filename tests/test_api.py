"""Tests through pygeoapi's own routes and API functions.

Requests go to the installed release's Flask app with the MongoDB
manager, so each release's own checks and status codes apply.
"""

import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from tests.app import execute, job_id_of, wait_for_job
from tests.helpers import RELEASE, job_metadata, wait_for_threads

ROOT = Path(__file__).resolve().parent.parent
HOSTILE_PATHS = [
    urllib.parse.quote('{"$ne": null}', safe=''),
    urllib.parse.quote('{"$gt": ""}', safe=''),
    '..%2F..',
    '..%2F..%2Fetc%2Fpasswd',
    'x' * 5000,
    urllib.parse.quote('jöb-雪-🙂', safe=''),
    '%00',
    '.%2A',
    '%20',
]
ODD_PAGING = [
    'limit=-1', 'limit=0', 'limit=abc', 'limit=1e3', f'limit={10 ** 30}',
    'offset=-1', 'offset=abc', 'offset=1.5', f'offset={10 ** 30}',
    'limit=2&offset=999999', 'limit=&offset=',
]


def run_async(client, inputs: dict, process_id: str = 'echo') -> str:
    response = execute(client, process_id, inputs, is_async=True)
    assert response.status_code == 201, response.get_data(as_text=True)
    return job_id_of(response)


def test_sync_execution_returns_result(client, app_jobs):
    response = execute(client, 'hello-world', {'name': 'Ada'}, False)

    assert response.status_code == 200
    assert response.get_json()['value'] == 'Hello Ada!'
    assert app_jobs.count_documents({'status': 'successful'}) == 1


def test_async_job_lifecycle(client, app_jobs):
    job_id = run_async(client, {'value': 'zebra ❄'})
    status = wait_for_job(client, job_id)

    assert status['status'] == 'successful'
    assert status['jobID'] == job_id
    result = client.get(f'/jobs/{job_id}/results?f=json')
    assert result.status_code == 200
    assert result.get_json() == {'id': 'echo', 'value': 'zebra ❄'}

    deleted = client.delete(f'/jobs/{job_id}')
    assert deleted.status_code == 200
    assert json.loads(deleted.get_data())['status'] == 'dismissed'
    assert client.get(f'/jobs/{job_id}?f=json').status_code == 404
    assert client.get(f'/jobs/{job_id}/results?f=json').status_code == 404
    assert client.delete(f'/jobs/{job_id}').status_code == 404
    assert app_jobs.count_documents({}) == 0


@pytest.mark.parametrize('mimetype, inputs, expected', [
    ('text/plain', {'value': 'Grüße'}, 'Grüße'.encode()),
    ('image/png', {'size': 3000}, None),
])
def test_async_result_keeps_mimetype(client, app_jobs, mimetype, inputs,
                                     expected):
    from tests.processes import binary_result
    job_id = run_async(client, dict(inputs, mimetype=mimetype))
    assert wait_for_job(client, job_id)['status'] == 'successful'

    result = client.get(f'/jobs/{job_id}/results')
    assert result.status_code == 200
    assert result.headers['Content-Type'].startswith(mimetype)
    assert result.get_data() == (expected or binary_result(3000))


def test_failed_job_results_400(client, app_jobs):
    job_id = run_async(client, {'fail': True})
    status = wait_for_job(client, job_id)

    assert status['status'] == 'failed'
    assert client.get(f'/jobs/{job_id}/results?f=json').status_code == 400


def test_running_job_results_404(client, app_jobs, tmp_path):
    release = tmp_path / 'release'
    job_id = run_async(client, {'wait_for': str(release)})

    response = client.get(f'/jobs/{job_id}/results?f=json')
    release.touch()
    assert response.status_code == 404
    assert wait_for_job(client, job_id)['status'] == 'successful'


def test_list_jobs_newest_first_with_paging(client, app_jobs):
    manager_jobs = []
    for number in range(12):
        job = job_metadata(number, 'successful')
        job.update(location=None, mimetype='application/json')
        app_jobs.insert_one(dict(job))
        manager_jobs.append(job['identifier'])
    newest_first = list(reversed(manager_jobs))

    listed = []
    for offset in (0, 5, 10):
        response = client.get(f'/jobs?f=json&limit=5&offset={offset}')
        assert response.status_code == 200
        listed.extend(job['jobID'] for job in response.get_json()['jobs'])

    if RELEASE >= (0, 18):
        assert listed == newest_first
    else:
        # Before 0.18 pygeoapi ignores limit and offset and lists all.
        assert listed[:12] == newest_first


def test_list_jobs_after_executions(client, app_jobs):
    job_ids = [run_async(client, {'value': str(n)}) for n in range(3)]
    for job_id in job_ids:
        wait_for_job(client, job_id)

    response = client.get('/jobs?f=json')
    listed = [job['jobID'] for job in response.get_json()['jobs']]
    assert listed == list(reversed(job_ids))


@pytest.mark.parametrize('path', HOSTILE_PATHS, ids=lambda p: p[:16])
def test_hostile_job_id_is_404(client, app_jobs, path):
    job_id = run_async(client, {'value': 'keep me'})
    wait_for_job(client, job_id)

    for method, url in [('get', f'/jobs/{path}?f=json'),
                        ('get', f'/jobs/{path}/results?f=json'),
                        ('delete', f'/jobs/{path}')]:
        response = getattr(client, method)(url)
        assert 400 <= response.status_code < 500, (
            method, url[:40], response.status_code)
    assert client.get(f'/jobs/{job_id}?f=json').status_code == 200
    assert app_jobs.count_documents({}) == 1


@pytest.mark.parametrize('query', ODD_PAGING)
def test_odd_paging_is_4xx_or_empty(client, app_jobs, query):
    job_id = run_async(client, {'value': 'one'})
    wait_for_job(client, job_id)

    response = client.get(f'/jobs?f=json&{query}')
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code == 200:
        jobs = response.get_json()['jobs']
        assert [job['jobID'] for job in jobs] in ([], [job_id])


def test_unknown_job_is_404(client, app_jobs):
    unknown = str(uuid.uuid1())

    assert client.get(f'/jobs/{unknown}?f=json').status_code == 404
    assert client.get(f'/jobs/{unknown}/results?f=json').status_code == 404
    assert client.delete(f'/jobs/{unknown}').status_code == 404


def test_delete_running_job_via_api(client, app_jobs, tmp_path):
    release = tmp_path / 'release'
    started = tmp_path / 'started'
    job_id = run_async(client, {'wait_for': str(release),
                                'started': str(started)})
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)

    assert client.delete(f'/jobs/{job_id}').status_code == 200
    release.touch()
    wait_for_threads()
    assert client.get(f'/jobs/{job_id}?f=json').status_code == 404
    assert app_jobs.count_documents({}) == 0
    assert app_jobs.database['job_results.files'].count_documents(
        {'metadata.identifier': job_id}) == 0


UNREACHABLE_CLIENT = '''
import json, sys, time
from pathlib import Path
from tests.app import flask_client
client = flask_client(Path(sys.argv[1]))
client.application.config['PROPAGATE_EXCEPTIONS'] = False
started = time.monotonic()
response = client.get('/jobs/some-job?f=json')
print(json.dumps([response.status_code, time.monotonic() - started]))
'''


def test_unreachable_server_is_5xx_not_404(tmp_path, mongodb_uri):
    from tests.app import write_config
    config = write_config(tmp_path, 'unreachable')
    config.write_text(config.read_text().replace(
        '    lease_seconds:', '    timeout_seconds: 0.5\n    lease_seconds:'))
    environment = dict(os.environ, PYGEOAPI_MONGODB_URI=(
        'mongodb://admin:s3cret@127.0.0.1:1/'), PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + sys.path))

    result = subprocess.run(
        [sys.executable, '-c', UNREACHABLE_CLIENT, str(config)],
        cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=60)
    status, seconds = json.loads(result.stdout.splitlines()[-1])
    output = result.stdout + result.stderr

    assert status == 500
    # Server selection gives up after 0.5 s, far below pymongo's 30 s.
    assert seconds < 5
    assert 'MongoDBManagerError' in output
    assert 'admin:***@127.0.0.1:1' in output
    assert 's3cret' not in output
