"""Tests with several pygeoapi processes on one jobs collection.

Each worker is a separate Python process running pygeoapi's Flask app
(``python -m tests.app``), as web workers of one deployment would.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pygeoapi.process.manager.mongodb_ import MongoDBManager

from tests.app import write_config
from tests.helpers import FINAL, wait_for_status

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4
JOBS_PER_WORKER = 10


def worker_environment() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + sys.path))


def test_workers_execute_concurrently(tmp_path, database_name, manager_def):
    config = write_config(tmp_path, database_name)
    workers = [subprocess.Popen(
        [sys.executable, '-m', 'tests.app', str(config),
         str(JOBS_PER_WORKER)],
        cwd=ROOT, env=worker_environment(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for _ in range(WORKERS)]
    job_ids = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=180)
        assert worker.returncode == 0, stderr
        job_ids.extend(stdout.split())

    manager = MongoDBManager(manager_def)
    jobs = manager.get_jobs()
    listed = jobs['jobs'] if isinstance(jobs, dict) else jobs
    assert len(job_ids) == WORKERS * JOBS_PER_WORKER
    assert len(set(job_ids)) == len(job_ids)
    assert sorted(job['identifier'] for job in listed) == sorted(job_ids)
    for job in listed:
        assert job['status'] == 'successful', job
        mimetype, result = manager.get_job_result(job['identifier'])
        assert mimetype == 'application/json'
        assert result['id'] == 'echo'
    values = sorted(manager.get_job_result(job_id)[1]['value']
                    for job_id in job_ids)
    assert len(set(values)) == len(job_ids)


KILLED_WORKER = '''
import sys
from tests.app import execute, flask_client, job_id_of
from pathlib import Path
client = flask_client(Path(sys.argv[1]))
response = execute(client, 'echo', {
    'wait_for': sys.argv[2], 'started': sys.argv[3]}, True)
print(job_id_of(response), flush=True)
'''


def test_killed_worker_job_fails_after_lease(tmp_path, database_name,
                                             manager_def):
    config = write_config(tmp_path, database_name, lease_seconds=2)
    started = tmp_path / 'started'
    never = tmp_path / 'never-created'
    worker = subprocess.Popen(
        [sys.executable, '-c', KILLED_WORKER, str(config), str(never),
         str(started)],
        cwd=ROOT, env=worker_environment(), stdout=subprocess.PIPE,
        text=True)
    job_id = worker.stdout.readline().strip()
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline, 'the job never started'
        time.sleep(0.05)

    manager = MongoDBManager(dict(manager_def, lease_seconds=2))
    assert manager.get_job(job_id)['status'] in ('accepted', 'running')
    time.sleep(5)
    # Alive, the worker renews the lease, so the job keeps running.
    assert manager.get_job(job_id)['status'] in ('accepted', 'running')

    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    worker.stdout.close()
    job = wait_for_status(manager, job_id, FINAL, timeout=15)

    assert job['status'] == 'failed'
    assert 'worker running it was lost' in job['message']
    assert manager.get_job_result(job_id) == (None, None)
