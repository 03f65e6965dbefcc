"""Benchmark the job lifecycle of pygeoapi's job managers, in process.

Jobs are pre-filled with ``insert_many`` or, for TinyDB, written as its
JSON file. At each store size, each candidate runs the calls pygeoapi
makes for one job as many times as fit in ``--seconds`` (at most
``--jobs``): ``add_job``, ``update_job`` to running, ``update_job`` to
successful, ``get_job`` and ``get_jobs(limit=10)``. The candidates are:

- ``ours``: this project's ``MongoDBManager``;
- ``raw``: the same operations written directly in pymongo, on the same
  server and with the same indexes, which is the ceiling for any manager;
- ``upstream``: pygeoapi's own MongoDB manager, loaded from the release's
  sdist under another module name;
- ``tinydb``: pygeoapi's ``TinyDBManager``.

It then measures the latency of ``get_jobs(limit=10)`` and the Python
memory one such call allocates at its peak (tracemalloc), and prints
jobs/s and the ratios of ``ours`` to the others, all from the same run.
Run it with the Python of an environment that has the patched pygeoapi,
pymongo and tinydb installed, for example the one ``locust/run.py``
builds::

    build/bench/venv-patched/bin/python benchmarks/manager_benchmark.py

The server comes from ``tools/mongodb_server.py``: ``PYGEOAPI_MONGODB_URI``
if set, otherwise one it starts on 127.0.0.1.
"""

import argparse
import gc
import importlib.util
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pygeoapi
from pymongo import ASCENDING, DESCENDING, MongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))
from mongodb_server import provide_server  # noqa: E402

DATETIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'  # pygeoapi.util.DATETIME_FORMAT
BATCH = 5000  # documents per insert_many
CANDIDATES = ['ours', 'raw', 'upstream', 'tinydb']
UPSTREAM_DATABASE = 'job_manager_pygeoapi'  # fixed in pygeoapi's manager


def timestamp() -> str:
    return datetime.now(timezone.utc).strftime(DATETIME_FORMAT)


def new_job() -> dict:
    """Return the job metadata that pygeoapi 0.21 passes to add_job."""

    now = timestamp()
    return {
        'type': 'process', 'identifier': str(uuid.uuid1()),
        'process_id': 'hello-world', 'created': now, 'started': now,
        'updated': now, 'finished': None, 'status': 'accepted',
        'location': None, 'mimetype': 'application/octet-stream',
        'message': 'Job accepted and ready for execution', 'progress': 5,
    }


def running_update() -> dict:
    return {'updated': timestamp(), 'status': 'running',
            'message': 'Writing job output', 'progress': 95}


def successful_update(location: str) -> dict:
    now = timestamp()
    return {'finished': now, 'updated': now, 'status': 'successful',
            'location': location, 'mimetype': 'application/json',
            'message': 'Job complete', 'progress': 100}


def stored_jobs(count: int, location: str, with_finished_at: bool):
    """Yield ``count`` finished jobs, the oldest first, a second apart."""

    now = datetime.now(timezone.utc) - timedelta(days=1)
    for number in range(count):
        moment = now - timedelta(seconds=count - number)
        stamp = moment.strftime(DATETIME_FORMAT)
        job = new_job()
        job.update(successful_update(location))
        job.update(created=stamp, started=stamp, updated=stamp,
                   finished=stamp)
        if with_finished_at:
            job['_finished_at'] = moment
        yield job


def insert_jobs(collection, jobs) -> None:
    batch = []
    for job in jobs:
        batch.append(job)
        if len(batch) == BATCH:
            collection.insert_many(batch)
            batch = []
    if batch:
        collection.insert_many(batch)


class Candidate:
    """One way to store jobs, with the calls the benchmark times."""

    name = ''
    stored = 0  # jobs in the store, pre-filled and added

    def __init__(self, uri: str, work_dir: Path):
        self.uri = uri
        self.work_dir = work_dir
        self.location = str(work_dir / 'result.json')

    def fill_to(self, count: int) -> None:
        """Add stored jobs until there are at least ``count``."""

        missing = count - self.stored
        if missing > 0:
            self.prefill(missing)
            self.stored += missing

    def lifecycle(self) -> None:
        job = new_job()
        job_id = job['identifier']
        self.add_job(job)
        self.update_job(job_id, running_update())
        self.update_job(job_id, successful_update(self.location))
        self.get_job(job_id)
        self.list_page()
        self.stored += 1


class ManagerCandidate(Candidate):
    """A pygeoapi manager, called through its public methods."""

    def add_job(self, job):
        self.manager.add_job(job)

    def update_job(self, job_id, update):
        self.manager.update_job(job_id, update)

    def get_job(self, job_id):
        self.manager.get_job(job_id)

    def list_page(self):
        return self.manager.get_jobs(limit=10)


class Ours(ManagerCandidate):
    name = 'ours'
    database = 'bench_ours'

    def __init__(self, uri, work_dir):
        super().__init__(uri, work_dir)
        from pygeoapi.process.manager.mongodb_ import MongoDBManager

        if not hasattr(MongoDBManager, '_store'):
            sys.exit('error: pygeoapi here is not patched: run this with '
                     'the python of the environment that has the overlay, '
                     'such as build/bench/venv-patched/bin/python')
        self.client = MongoClient(uri)
        self.client.drop_database(self.database)
        self.collection = self.client[self.database]['jobs']
        self.manager = MongoDBManager({
            'name': 'MongoDB', 'connection': uri, 'database': self.database,
            'output_dir': str(work_dir)})
        self.manager.get_jobs(limit=1)  # connects and creates the indexes

    def prefill(self, count):
        insert_jobs(self.collection,
                    stored_jobs(count, self.location, with_finished_at=True))


class Raw(Candidate):
    name = 'raw'
    database = 'bench_raw'

    def __init__(self, uri, work_dir):
        super().__init__(uri, work_dir)
        self.client = MongoClient(uri)
        self.client.drop_database(self.database)
        self.collection = self.client[self.database]['jobs']
        self.collection.create_index([('identifier', ASCENDING)],
                                     unique=True)
        self.collection.create_index([('started', DESCENDING),
                                      ('_id', DESCENDING)])

    def prefill(self, count):
        insert_jobs(self.collection,
                    stored_jobs(count, self.location, with_finished_at=False))

    def add_job(self, job):
        self.collection.insert_one(dict(job))

    def update_job(self, job_id, update):
        self.collection.update_one({'identifier': job_id}, {'$set': update})

    def get_job(self, job_id):
        return self.collection.find_one({'identifier': job_id}, {'_id': 0})

    def list_page(self):
        cursor = self.collection.find({}, {'_id': 0}).sort(
            [('started', DESCENDING), ('_id', DESCENDING)]).limit(10)
        return {'jobs': list(cursor),
                'numberMatched': self.collection.count_documents({})}


class Upstream(ManagerCandidate):
    name = 'upstream'

    def __init__(self, uri, work_dir, source: Path):
        super().__init__(uri, work_dir)
        spec = importlib.util.spec_from_file_location(
            'upstream_mongodb_manager', source)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        # pygeoapi's manager ignores the URI's database and always uses
        # job_manager_pygeoapi.jobs.
        self.client = MongoClient(uri)
        self.client.drop_database(UPSTREAM_DATABASE)
        self.collection = self.client[UPSTREAM_DATABASE]['jobs']
        self.manager = module.MongoDBManager({
            'name': 'MongoDB', 'connection': uri,
            'output_dir': str(work_dir)})

    def prefill(self, count):
        insert_jobs(self.collection,
                    stored_jobs(count, self.location, with_finished_at=False))


class TinyDB(ManagerCandidate):
    name = 'tinydb'

    def __init__(self, uri, work_dir):
        super().__init__(uri, work_dir)
        from pygeoapi.process.manager.tinydb_ import TinyDBManager

        self.path = work_dir / 'tinydb-jobs.json'
        self.path.write_text(json.dumps({'_default': {}}))
        self.manager = TinyDBManager({
            'name': 'TinyDB', 'connection': str(self.path),
            'output_dir': str(work_dir)})

    def prefill(self, count):
        # TinyDB's JSON storage keys each document by its integer id as a
        # string, which is the file that TinyDB itself writes.
        tables = json.loads(self.path.read_text())
        table = tables['_default']
        next_id = max(map(int, table), default=0) + 1
        for number, job in enumerate(
                stored_jobs(count, self.location, with_finished_at=False)):
            table[str(next_id + number)] = job
        self.path.write_text(json.dumps(tables))


def upstream_source(version: str, cache: Path) -> Path:
    """Return pygeoapi's own mongodb_.py of ``version``, from its sdist."""

    target = cache / f'upstream-mongodb_-{version}.py'
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps',
         '--no-binary', ':all:', '-d', str(cache), f'pygeoapi=={version}'],
        check=True)
    sdist = next(cache.glob(f'pygeoapi-{version}.tar.gz'))
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(
            f'pygeoapi-{version}/pygeoapi/process/manager/mongodb_.py')
        target.write_bytes(member.read())
    return target


def run_lifecycles(candidate, max_jobs: int, max_seconds: float) -> dict:
    """Run lifecycles until ``max_jobs`` or ``max_seconds``, at least one."""

    done = 0
    started = time.perf_counter()
    while True:
        candidate.lifecycle()
        done += 1
        elapsed = time.perf_counter() - started
        if done >= max_jobs or elapsed >= max_seconds:
            break
    return {'jobs': done, 'seconds': elapsed, 'jobs_per_s': done / elapsed}


def measure_listing(candidate, samples: int, max_seconds: float) -> dict:
    """Time get_jobs(limit=10) and its tracemalloc peak."""

    latencies = []
    deadline = time.perf_counter() + max_seconds
    while len(latencies) < samples:
        started = time.perf_counter()
        page = candidate.list_page()
        latencies.append((time.perf_counter() - started) * 1000)
        if time.perf_counter() > deadline:
            break

    # One more call under tracemalloc, whose hooks slow every allocation,
    # so it is kept out of the timed calls.
    gc.collect()
    tracemalloc.start()
    page = candidate.list_page()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    returned = len(page['jobs']) if isinstance(page, dict) else None

    latencies.sort()
    return {
        'samples': len(latencies),
        'p50_ms': statistics.median(latencies),
        'p95_ms': latencies[min(len(latencies) - 1,
                                int(len(latencies) * 0.95))],
        'peak_kib': peak / 1024,
        'returned': returned,
        'rss_mib': rss_mib(),
    }


def rss_mib() -> float:
    """Return this process's resident set size, from /proc (Linux)."""

    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def print_size(size: int, rows: dict) -> None:
    print(f'\n{size} stored jobs')
    print(f'{"candidate":10} {"jobs":>6} {"jobs/s":>9} {"list p50 ms":>12} '
          f'{"list p95 ms":>12} {"returned":>9} {"peak KiB":>10} '
          f'{"RSS MiB":>8}')
    for name, row in rows.items():
        cycle, listing = row['lifecycle'], row['listing']
        print(f'{name:10} {cycle["jobs"]:>6} {cycle["jobs_per_s"]:>9.1f} '
              f'{listing["p50_ms"]:>12.2f} {listing["p95_ms"]:>12.2f} '
              f'{listing["returned"]!s:>9} {listing["peak_kib"]:>10.1f} '
              f'{listing["rss_mib"]:>8.1f}')
    if 'ours' in rows:
        ours = rows['ours']['lifecycle']['jobs_per_s']
        ratios = [f'ours/{name} {ours / row["lifecycle"]["jobs_per_s"]:.2f}x'
                  for name, row in rows.items() if name != 'ours']
        print('lifecycle ratios: ' + ', '.join(ratios), flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--sizes', default='1000,10000,100000',
        help='comma-separated numbers of stored jobs, each measured in '
             'turn (default: 1000,10000,100000)')
    parser.add_argument(
        '--candidates', default=','.join(CANDIDATES),
        help=f'comma-separated candidates from {", ".join(CANDIDATES)}')
    parser.add_argument(
        '--jobs', type=int, default=1000,
        help='maximum lifecycles per candidate and size; each adds a job '
             'to the store (default: 1000)')
    parser.add_argument(
        '--seconds', type=float, default=10.0,
        help='maximum seconds of lifecycles per candidate and size; at '
             'least one lifecycle always runs (default: 10)')
    parser.add_argument(
        '--latency-samples', type=int, default=50,
        help='get_jobs(limit=10) calls timed per candidate and size, '
             'fewer if they take over 5 s (default: 50)')
    parser.add_argument(
        '--upstream-file', type=Path,
        help="pygeoapi's own process/manager/mongodb_.py (default: taken "
             "from the sdist of the installed pygeoapi release)")
    parser.add_argument(
        '--output', type=Path,
        default=ROOT / 'build' / 'benchmarks' / 'manager_benchmark.json',
        help='JSON file for all figures (default: '
             'build/benchmarks/manager_benchmark.json)')
    args = parser.parse_args(argv)
    args.sizes = sorted(int(size) for size in args.sizes.split(','))
    args.candidates = [name for name in args.candidates.split(',') if name]
    unknown = set(args.candidates) - set(CANDIDATES)
    if unknown:
        parser.error(f'unknown candidates {", ".join(sorted(unknown))}: '
                     f'use {", ".join(CANDIDATES)}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    version = pygeoapi.__version__
    source = args.upstream_file or upstream_source(
        version, ROOT / 'build' / 'benchmarks')
    print(f'pygeoapi {version}; upstream manager from {source}', flush=True)

    results = {'pygeoapi': version, 'sizes': {}}
    with provide_server() as uri, tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        Path(work_dir / 'result.json').write_text('{"value": "Hello"}')
        makers = {
            'ours': lambda: Ours(uri, work_dir),
            'raw': lambda: Raw(uri, work_dir),
            'upstream': lambda: Upstream(uri, work_dir, source),
            'tinydb': lambda: TinyDB(uri, work_dir),
        }
        candidates = [makers[name]() for name in args.candidates]

        for size in args.sizes:
            rows = {}
            for candidate in candidates:
                started = time.perf_counter()
                candidate.fill_to(size)
                fill_seconds = time.perf_counter() - started
                # Listing is measured first, at exactly ``size`` jobs,
                # because each lifecycle adds one.
                listing = measure_listing(candidate, args.latency_samples,
                                          5.0)
                rows[candidate.name] = {
                    'prefill_seconds': fill_seconds,
                    'listing': listing,
                    'lifecycle': run_lifecycles(candidate, args.jobs,
                                                args.seconds),
                }
            print_size(size, rows)

            # The figures are written after each size, so a run stopped
            # during a long large size keeps those of the smaller ones.
            results['sizes'][size] = rows
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(results, indent=2))
            print(f'figures written to {args.output}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
