"""Test helpers that hide how pygeoapi releases differ.

``execute`` runs a process through the manager's own
``execute_process``, whose signature changed in 0.15 and 0.16.
``job_metadata`` builds a job as the running release writes it.
"""

import threading
import time
import uuid

import pygeoapi.process.manager.mongodb_ as mongodb_
from pygeoapi.plugin import load_plugin
from pygeoapi.util import JobStatus

RELEASE = mongodb_.RELEASE
START_KEY = mongodb_.START_KEY
END_KEY = mongodb_.END_KEY
ECHO = {'type': 'process',
        'processor': {'name': 'tests.processes.EchoProcessor'}}
RAISES_NOT_FOUND = RELEASE >= (0, 16)


def execute(manager, inputs: dict, is_async: bool = False) -> str:
    """Execute the echo process with ``inputs``; return the job id."""

    if RELEASE < (0, 15):
        job_id = str(uuid.uuid1())
        processor = load_plugin('process', ECHO['processor'])
        manager.execute_process(processor, job_id, inputs, is_async)
        return job_id

    from pygeoapi.util import RequestedProcessExecutionMode
    mode = (RequestedProcessExecutionMode.respond_async if is_async
            else RequestedProcessExecutionMode.wait)
    if RELEASE < (0, 16):
        processor = load_plugin('process', ECHO['processor'])
        result = manager.execute_process(processor, inputs, mode)
    else:
        # From 0.16 the manager loads processes from its own config.
        manager.processes.setdefault('echo', ECHO)
        result = manager.execute_process('echo', inputs, mode)
    return result[0]


def job_metadata(number: int = 0, status: str = 'successful',
                 identifier: str = None) -> dict:
    """Return a job as this release's execution handler writes it.

    Jobs with a higher ``number`` started later.
    """

    started = f'2026-01-01T00:00:{number // 1000:02d}.{number % 1000:06d}Z'
    job = {
        'type': 'process',
        'identifier': identifier or str(uuid.uuid4()),
        'process_id': 'echo',
        START_KEY: started,
        END_KEY: None,
        'status': status,
        'location': None,
        'mimetype': 'application/octet-stream',
        'message': 'Job accepted and ready for execution',
        'progress': 5,
    }
    if RELEASE >= (0, 20):
        job.update(created=started, updated=started)
    return job


def wait_for_status(manager, job_id: str, statuses, timeout: float = 30):
    """Poll the manager until the job has one of ``statuses``."""

    deadline = time.monotonic() + timeout
    while True:
        job = manager.get_job(job_id)
        if job and job['status'] in statuses:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f'job {job_id} is {job and job["status"]}, '
                               f'not {statuses}, after {timeout} s')
        time.sleep(0.05)


def wait_for_threads(timeout: float = 30) -> None:
    """Wait until the async job threads of this process have ended."""

    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))


FINAL = (JobStatus.successful.value, JobStatus.failed.value)
