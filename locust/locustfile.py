"""Locust workload for pygeoapi's OGC API - Processes job endpoints.

Each simulated user mixes the requests a client of a job manager sends:
asynchronous execution (``Prefer: respond-async``) followed by polling
of the job until it ends, result downloads, pages of ``/jobs``, lookups
of known jobs, deletions and synchronous execution. URLs with a job
identifier are grouped with ``name=``, so the statistics have one row
per endpoint. Run it from the web UI or headless::

    locust -f locust/locustfile.py --host http://127.0.0.1:5000
    locust -f locust/locustfile.py --host http://127.0.0.1:5000 \\
        --headless -u 20 -r 10 -t 60s --job-log-dir locust/results/jobs

Every option below also reads the environment variable named in its
``env_var``. With ``--job-log-dir`` each locust process writes
the identifiers of the jobs the server accepted and deleted, one per
line, so that ``locust/jobs.py check`` can verify every job afterwards.
"""

import json
import os
import random
import socket
import time
from collections import Counter, deque
from contextlib import contextmanager
from pathlib import Path

from locust import HttpUser, events, task

FINAL_STATUSES = {'successful', 'failed', 'dismissed'}
DEFAULT_INPUTS = '{"name": "locust", "message": "load test"}'
DEFAULT_WEIGHTS = 'async=4,results=2,list=3,get=3,delete=1,sync=2'
POOL_SIZE = 1000  # job identifiers kept per pool, oldest dropped first


@events.init_command_line_parser.add_listener
def add_options(parser):
    parser.add_argument(
        '--process-id', env_var='LOCUST_PROCESS_ID', default='hello-world',
        help='identifier of the process to execute (default: hello-world)')
    parser.add_argument(
        '--inputs', env_var='LOCUST_INPUTS', default=DEFAULT_INPUTS,
        help='JSON object sent as the execution request\'s "inputs"')
    parser.add_argument(
        '--weights', env_var='LOCUST_WEIGHTS', default=DEFAULT_WEIGHTS,
        help='task weights as name=integer pairs; names: async, results, '
             'list, get, delete, sync; 0 or a missing name disables a task '
             f'(default: {DEFAULT_WEIGHTS})')
    parser.add_argument(
        '--poll-interval', env_var='LOCUST_POLL_INTERVAL', type=float,
        default=0.2,
        help='seconds between two polls of an asynchronous job')
    parser.add_argument(
        '--poll-timeout', env_var='LOCUST_POLL_TIMEOUT', type=float,
        default=60.0,
        help='seconds a job may take to end before its poll is a failure')
    parser.add_argument(
        '--request-timeout', env_var='LOCUST_REQUEST_TIMEOUT', type=float,
        default=60.0,
        help='seconds to wait for one response before it is a failure')
    parser.add_argument(
        '--list-limit', env_var='LOCUST_LIST_LIMIT', type=int, default=10,
        help='limit parameter of GET /jobs (jobs per page)')
    parser.add_argument(
        '--max-offset', env_var='LOCUST_MAX_OFFSET', type=int, default=100,
        help='largest offset parameter of GET /jobs; each page request '
             'draws an offset from 0 to this')
    parser.add_argument(
        '--wait-min', env_var='LOCUST_WAIT_MIN', type=float, default=0.0,
        help='minimum seconds a user waits between two tasks')
    parser.add_argument(
        '--wait-max', env_var='LOCUST_WAIT_MAX', type=float, default=0.2,
        help='maximum seconds a user waits between two tasks')
    parser.add_argument(
        '--job-log-dir', env_var='LOCUST_JOB_LOG_DIR', default='',
        help='folder for the files of accepted and deleted job '
             'identifiers, one file per locust process (default: none)')


def parse_weights(text: str) -> dict:
    """Parse ``async=4,list=3`` into ``{'async': 4, 'list': 3}``.

    :raises ValueError: naming the invalid pair and the valid names
    """

    weights = {}
    for pair in filter(None, (part.strip() for part in text.split(','))):
        name, _, value = pair.partition('=')
        if name not in TASK_NAMES or not value.isdigit():
            raise ValueError(
                f'invalid task weight {pair!r}: use name=integer with a '
                f'name from {", ".join(TASK_NAMES)}')
        weights[name] = int(value)
    if not any(weights.values()):
        raise ValueError(f'task weights {text!r} disable every task: give '
                         f'at least one a weight above 0')
    return weights


class JobLog:
    """The file of job identifiers that this locust process writes."""

    def __init__(self, folder: str):
        self.file = None
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            name = f'jobs-{socket.gethostname()}-{os.getpid()}.log'
            self.file = open(Path(folder) / name, 'a', buffering=1)

    def write(self, event: str, job_id: str) -> None:
        if self.file is not None:
            self.file.write(f'{event} {job_id}\n')


class JobPools:
    """Job identifiers that the users of this locust process share.

    ``finished`` are jobs this process created and saw end, which the
    results, get and delete tasks use. ``listed`` are identifiers seen in
    pages of ``/jobs``, also used by the get task. A deleted job leaves
    both pools before its DELETE is sent, and a job with a request in
    flight is not deleted, so no request targets a job that this
    process deletes.
    """

    def __init__(self):
        self.finished = deque(maxlen=POOL_SIZE)
        self.listed = deque(maxlen=POOL_SIZE)
        self.deleted = set()
        self.in_flight = Counter()

    @contextmanager
    def using(self, job_id: str):
        """Keep ``job_id`` from deletion while a request is in flight."""

        self.in_flight[job_id] += 1
        try:
            yield job_id
        finally:
            self.in_flight[job_id] -= 1
            if not self.in_flight[job_id]:
                del self.in_flight[job_id]

    def add_listed(self, job_ids) -> None:
        for job_id in job_ids:
            if job_id not in self.deleted:
                self.listed.append(job_id)

    def take_for_delete(self):
        # Locust users are gevent greenlets, which switch only at I/O, so
        # no other user runs between this check and the removal.
        idle = [job_id for job_id in self.finished
                if job_id not in self.in_flight]
        if not idle:
            return None
        job_id = idle[0]
        self.finished.remove(job_id)
        self.deleted.add(job_id)

        # A job is listed again each time a page shows it, so every copy
        # of its identifier goes.
        others = [listed for listed in self.listed if listed != job_id]
        self.listed = deque(others, maxlen=POOL_SIZE)
        return job_id


POOLS = JobPools()
JOB_LOG = None


@events.test_start.add_listener
def open_job_log(environment, **kwargs):
    global JOB_LOG
    JOB_LOG = JobLog(environment.parsed_options.job_log_dir)


def job_id_from(response):
    """Return the job identifier in the Location header, or None."""

    location = response.headers.get('Location', '')
    return location.rstrip('/').rsplit('/', 1)[-1] or None


class ProcessesUser(HttpUser):
    """A client of one pygeoapi process and its jobs."""

    def on_start(self):
        options = self.environment.parsed_options
        self.options = options
        self.inputs = json.loads(options.inputs)
        self.execution_url = f'/processes/{options.process_id}/execution'

        # The @task weights below are the defaults. The configured weights
        # replace them for this user, because DefaultTaskSet draws from
        # the user's tasks list.
        weights = parse_weights(options.weights)
        self.tasks = [function for name, function in TASK_NAMES.items()
                      for _ in range(weights.get(name, 0))]

    def wait_time(self):
        return random.uniform(self.options.wait_min, self.options.wait_max)

    def _execute(self, prefer_async: bool):
        headers = {'Prefer': 'respond-async'} if prefer_async else {}
        expected = 201 if prefer_async else 200
        name = ('/processes/[id]/execution (async)' if prefer_async
                else '/processes/[id]/execution (sync)')
        with self.client.post(
                self.execution_url, json={'inputs': self.inputs},
                headers=headers, name=name, catch_response=True,
                timeout=self.options.request_timeout) as response:
            if response.status_code != expected:
                response.failure(f'expected HTTP {expected}, got '
                                 f'{response.status_code} '
                                 f'{response.error or ""}')
                return None
            job_id = job_id_from(response)
            if job_id is not None:
                JOB_LOG.write('accepted', job_id)
            return job_id

    @task(4)
    def execute_async(self):
        """Execute the process asynchronously and poll until it ends."""

        job_id = self._execute(prefer_async=True)
        if job_id is None:
            return

        deadline = time.monotonic() + self.options.poll_timeout
        while True:
            with self.client.get(
                    f'/jobs/{job_id}', name='/jobs/[id] (poll)',
                    catch_response=True,
                    timeout=self.options.request_timeout) as response:
                if response.status_code != 200:
                    response.failure(f'job {job_id}: HTTP '
                                     f'{response.status_code} '
                                     f'{response.error or ""}')
                    return
                status = response.json().get('status')
                if status in FINAL_STATUSES:
                    if status == 'successful':
                        POOLS.finished.append(job_id)
                    else:
                        response.failure(f'job {job_id} ended {status}')
                    return
                if time.monotonic() > deadline:
                    response.failure(
                        f'job {job_id} still {status} after '
                        f'{self.options.poll_timeout:g} s')
                    return
            time.sleep(self.options.poll_interval)

    @task(2)
    def get_results(self):
        """Download the results of a job that ended successfully."""

        if not POOLS.finished:
            return
        with POOLS.using(random.choice(POOLS.finished)) as job_id:
            self.client.get(f'/jobs/{job_id}/results',
                            name='/jobs/[id]/results',
                            timeout=self.options.request_timeout)

    @task(3)
    def list_jobs(self):
        """Request one page of /jobs at a random offset."""

        params = {'limit': self.options.list_limit,
                  'offset': random.randint(0, self.options.max_offset)}
        with self.client.get(
                '/jobs', params=params, name='/jobs?limit&offset',
                headers={'Accept': 'application/json'}, catch_response=True,
                timeout=self.options.request_timeout) as response:
            if response.status_code != 200:
                response.failure(f'HTTP {response.status_code} '
                                 f'{response.error or ""}')
                return
            jobs = response.json().get('jobs', [])
            POOLS.add_listed(job['jobID'] for job in jobs if 'jobID' in job)

    @task(3)
    def get_job(self):
        """Request the status of a random known job."""

        pool = POOLS.listed if random.random() < 0.5 else POOLS.finished
        if not pool:
            pool = POOLS.listed or POOLS.finished
        if not pool:
            return
        with POOLS.using(random.choice(pool)) as job_id:
            self.client.get(f'/jobs/{job_id}', name='/jobs/[id]',
                            timeout=self.options.request_timeout)

    @task(1)
    def delete_job(self):
        """Delete the oldest finished job of this locust process."""

        job_id = POOLS.take_for_delete()
        if job_id is None:
            return

        # A job whose DELETE failed, or was still in flight when locust
        # stopped, may or may not exist afterwards. So the request is
        # logged before it is sent, and the check accepts either state
        # for a job without a logged outcome.
        JOB_LOG.write('delete-sent', job_id)
        response = self.client.delete(
            f'/jobs/{job_id}', name='/jobs/[id] (delete)',
            timeout=self.options.request_timeout)
        if response.status_code == 200:
            JOB_LOG.write('deleted', job_id)
        else:
            JOB_LOG.write('delete-failed', job_id)

    @task(2)
    def execute_sync(self):
        """Execute the process synchronously (no Prefer header)."""

        job_id = self._execute(prefer_async=False)
        if job_id is not None:
            POOLS.finished.append(job_id)


TASK_NAMES = {
    'async': ProcessesUser.execute_async,
    'results': ProcessesUser.get_results,
    'list': ProcessesUser.list_jobs,
    'get': ProcessesUser.get_job,
    'delete': ProcessesUser.delete_job,
    'sync': ProcessesUser.execute_sync,
}
