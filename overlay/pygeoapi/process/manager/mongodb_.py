# =================================================================
#
# Copyright (c) 2026 pygeoapi MongoDB job manager contributors
#
# Permission is hereby granted, free of charge, to any person
# obtaining a copy of this software and associated documentation
# files (the "Software"), to deal in the Software without
# restriction, including without limitation the rights to use,
# copy, modify, merge, publish, distribute, sublicense, and/or sell
# copies of the Software, and to permit persons to whom the
# Software is furnished to do so, subject to the following
# conditions:
#
# The above copyright notice and this permission notice shall be
# included in all copies or substantial portions of the Software.
#
# THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND,
# EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES
# OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
# NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT
# HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY,
# WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING
# FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR
# OTHER DEALINGS IN THE SOFTWARE.
#
# =================================================================

"""MongoDB process manager: OGC API - Processes jobs kept in MongoDB.

Jobs are documents in one collection, looked up by a unique
``identifier`` index. Results are files in ``output_dir`` when it is set,
and otherwise files in a GridFS bucket of the same database, so that
every web worker and host can serve every job's result.

The same file works on pygeoapi 0.14 to 0.24 and master. What differs
between releases is detected once, at import:

- from 0.16, unknown jobs raise ``JobNotFoundError``; before, ``get_job``
  returns ``None`` and ``delete_job`` returns ``False``;
- from 0.17, ``execute_process`` adds the job before the execution
  handler runs. Before, the handler adds it, in the job's own thread
  when the job is asynchronous;
- from 0.18, ``get_jobs`` pages and returns ``{'jobs', 'numberMatched'}``;
  before, it returns the whole list;
- from 0.20, the time keys are ``created``, ``started``, ``updated`` and
  ``finished``; before, ``job_start_datetime`` and ``job_end_datetime``.

Besides the job fields that pygeoapi writes, each job document has
``_finished_at``, the time the job ended, which is never returned.

While a job runs, a thread of its process renews the job's lease, a
document ``{_id: identifier, expires: time}`` in the collection
``<collection>_leases``. Leases live apart from the jobs so that only the
thread running a job writes its document. FerretDB 1.x applies an update
as read, modify and write, so a lease renewal racing a status update on
the same document could undo the status change. A job whose lease
expired is marked failed, and finished jobs older than
``retention_seconds`` are removed with their results. Both sweeps run
when a process first connects and then from that thread, because TTL
indexes are not available on every server (FerretDB 1.x rejects them).
"""

import io
import json
import logging
import os
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import gridfs
from bson import ObjectId
from gridfs.errors import NoFile
from pymongo import ASCENDING, DESCENDING, MongoClient, uri_parser
from pymongo.errors import (
    ConfigurationError, DuplicateKeyError, InvalidURI, OperationFailure,
    PyMongoError
)

import pygeoapi
import pygeoapi.process.base as process_base
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import JobStatus

LOGGER = logging.getLogger(__name__)


def _release() -> Tuple[int, int]:
    """Return pygeoapi's (major, minor) release, e.g. (0, 24) for master."""

    match = re.match(r'(\d+)\.(\d+)', pygeoapi.__version__)
    return int(match.group(1)), int(match.group(2))


RELEASE = _release()
PAGED_GET_JOBS = RELEASE >= (0, 18)
ADDS_JOB_BEFORE_HANDLER = RELEASE >= (0, 17)
if RELEASE >= (0, 20):
    START_KEY, END_KEY, UPDATED_KEY = 'started', 'finished', 'updated'
else:
    START_KEY, END_KEY, UPDATED_KEY = (
        'job_start_datetime', 'job_end_datetime', None)

JobNotFoundError = getattr(process_base, 'JobNotFoundError', None)
JobResultNotFoundError = getattr(
    process_base, 'JobResultNotFoundError', None)

DATETIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'  # pygeoapi.util.DATETIME_FORMAT
JSON_MIMETYPES = (None, 'application/json', 'application/ld+json')
ACTIVE_STATUSES = [JobStatus.accepted.value, JobStatus.running.value]
FINAL_STATUSES = [JobStatus.successful.value, JobStatus.failed.value,
                  JobStatus.dismissed.value]
GRIDFS_LOCATION_PREFIX = 'gridfs:'
RETENTION_BATCH = 500  # documents removed per retention query
MAX_SKIP = 2 ** 62  # past any collection; bigger offsets overflow BSON int64
MAX_LIMIT = 2 ** 31 - 1  # larger limits are sent as "no limit"

DEFAULTS = {
    'database': 'job_manager_pygeoapi',
    'collection': 'jobs',
    'gridfs_bucket': 'job_results',
    'timeout_seconds': 5.0,
    'lease_seconds': 60.0,
    'retention_seconds': None,
}


class MongoDBManagerError(RuntimeError):
    """The MongoDB server failed or could not be reached."""


class ManagerConfigError(ValueError):
    """A key of the ``server.manager`` section is missing or invalid."""


def redact_uri(uri: str) -> str:
    """Return ``uri`` with the password replaced by ``***``."""

    return re.sub(r'^(mongodb(?:\+srv)?://[^:@/]*):[^@/]*@', r'\1:***@',
                  str(uri))


def shown(job_id, length: int = 80) -> str:
    """Return ``job_id`` quoted for a message, cut to ``length`` chars.

    Identifiers come from clients, so one may be far too long to log.
    """

    text = repr(job_id)
    return text if len(text) <= length else f'{text[:length]}...'


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _timestamp() -> str:
    return _utcnow().strftime(DATETIME_FORMAT)


class Settings:
    """The validated ``server.manager`` section.

    :raises ManagerConfigError: naming the key, its value and the fix
    """

    def __init__(self, manager_def: dict):
        self.uri = self._parse_uri(manager_def.get('connection'))
        parsed = uri_parser.parse_uri(
            self.uri.replace('mongodb+srv://', 'mongodb://', 1), warn=False)
        self.uri_options = {key.lower() for key in parsed['options']}

        self.database = self._database(manager_def, parsed['database'])
        self.collection = self._name(manager_def, 'collection')
        self.gridfs_bucket = self._name(manager_def, 'gridfs_bucket')
        self.timeout_seconds = self._seconds(manager_def, 'timeout_seconds')
        self.lease_seconds = self._seconds(manager_def, 'lease_seconds')
        self.retention_seconds = self._seconds(
            manager_def, 'retention_seconds')

    @staticmethod
    def _parse_uri(uri) -> str:
        fix = ('set server.manager.connection to a URI such as '
               'mongodb://user:password@host:27017/ or '
               'mongodb+srv://user:password@cluster.example.org/')
        if not uri or not isinstance(uri, str):
            raise ManagerConfigError(
                f'server.manager.connection is missing or not a string '
                f'({type(uri).__name__}): {fix}')
        if '${' in uri:
            raise ManagerConfigError(
                f'server.manager.connection {redact_uri(uri)!r} contains '
                f'an unset environment variable: set it before starting '
                f'pygeoapi')

        # A mongodb+srv:// URI is checked with the mongodb:// syntax,
        # because parsing it as SRV would resolve DNS records at start-up.
        checked = uri
        if uri.startswith('mongodb+srv://'):
            checked = 'mongodb://' + uri[len('mongodb+srv://'):]
        try:
            uri_parser.parse_uri(checked, warn=False)
        except (InvalidURI, ConfigurationError, ValueError) as err:
            raise ManagerConfigError(
                f'server.manager.connection {redact_uri(uri)!r} is not a '
                f'valid MongoDB URI ({err}): {fix}') from None
        return uri

    @staticmethod
    def _database(manager_def: dict, uri_database: Optional[str]) -> str:
        database = manager_def.get('database')
        if database is None:
            return uri_database or DEFAULTS['database']
        if uri_database and database != uri_database:
            raise ManagerConfigError(
                f'server.manager.database {database!r} differs from the '
                f'database {uri_database!r} in the connection URI: remove '
                f'one of them')
        return Settings._name(manager_def, 'database')

    @staticmethod
    def _name(manager_def: dict, key: str) -> str:
        value = manager_def.get(key, DEFAULTS[key])
        if (not isinstance(value, str) or not value or '$' in value
                or '\0' in value or value.startswith('.')
                or value.endswith('.')):
            raise ManagerConfigError(
                f'server.manager.{key} {value!r} is not a valid MongoDB '
                f'name: use letters, digits and underscores, such as '
                f'{DEFAULTS[key]!r}')
        return value

    @staticmethod
    def _seconds(manager_def: dict, key: str) -> Optional[float]:
        value = manager_def.get(key, DEFAULTS[key])
        if value is None:
            return None

        # Environment substitution in pygeoapi's config can leave
        # numbers as strings, so numeric strings are accepted.
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = float('nan')
        if isinstance(value, bool) or not seconds > 0 or seconds == float(
                'inf'):
            raise ManagerConfigError(
                f'server.manager.{key} {value!r} is invalid: give a '
                f'positive number of seconds, such as {DEFAULTS[key] or 30}')
        return seconds

    def client_options(self) -> dict:
        """Return the ``MongoClient`` options the URI does not set."""

        options = {'appname': 'pygeoapi-job-manager', 'tz_aware': True}
        timeout_ms = int(self.timeout_seconds * 1000)
        for name in ('serverSelectionTimeoutMS', 'connectTimeoutMS'):
            if name.lower() not in self.uri_options:
                options[name] = timeout_ms
        return options

    def key(self) -> tuple:
        return (self.uri, self.database, self.collection,
                self.gridfs_bucket, self.timeout_seconds, self.lease_seconds,
                self.retention_seconds)


class JobStore:
    """One process's connection to one jobs collection and GridFS bucket.

    There is one store per process and settings, shared by every manager
    instance with those settings. It owns the ``MongoClient``, the set of
    jobs this process runs, and the thread that renews their leases and
    runs the sweeps.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pid = os.getpid()
        self.client = MongoClient(settings.uri, **settings.client_options())
        database = self.client[settings.database]
        self.jobs = database[settings.collection]
        self.leases = database[f'{settings.collection}_leases']
        self.results = gridfs.GridFSBucket(
            database, bucket_name=settings.gridfs_bucket)
        self.results_files = database[f'{settings.gridfs_bucket}.files']
        self.owned_jobs = set()
        self.owned_lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = None

    def start(self) -> None:
        """Create the indexes, run the sweeps once and start the thread."""

        LOGGER.info(f'Connecting to {redact_uri(self.settings.uri)}, '
                    f'collection {self.settings.database}.'
                    f'{self.settings.collection}')
        self.create_indexes()
        self.sweep()
        self.thread = threading.Thread(
            target=self._maintain, name='pygeoapi-job-leases', daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop the lease thread and close the client."""

        self.stopping.set()
        if self.thread is not None:
            self.thread.join()
        self.client.close()
        with _STORES_LOCK:
            if _STORES.get(self.settings.key()) is self:
                del _STORES[self.settings.key()]

    def create_indexes(self) -> None:
        indexes = [
            ([('identifier', ASCENDING)], {'unique': True}),
            ([(START_KEY, DESCENDING), ('_id', DESCENDING)], {}),
            ([('status', ASCENDING), (START_KEY, DESCENDING),
              ('_id', DESCENDING)], {}),
        ]
        for keys, options in indexes:
            try:
                self.jobs.create_index(keys, **options)
            except OperationFailure as err:
                # MongoDB raises DuplicateKeyError here, but FerretDB
                # raises a plain OperationFailure ("UNIQUE constraint
                # failed"), so any failure of the unique index counts.
                if not options.get('unique'):
                    raise
                # Jobs written without the unique index may repeat an
                # identifier. They are kept: lookups then return the
                # first match, and the operator resolves the duplicates.
                LOGGER.error(
                    f'Cannot create the unique index on identifier in '
                    f'{self.jobs.full_name}: {err}. If identifiers repeat, '
                    f'remove the duplicate jobs, then restart pygeoapi.')
        self.results_files.create_index([('metadata.identifier', ASCENDING)])
        self.leases.create_index([('expires', ASCENDING)])
        LOGGER.info(f'Indexes ready on {self.jobs.full_name}')

    def own(self, job_id: str) -> None:
        with self.owned_lock:
            self.owned_jobs.add(job_id)

    def disown(self, job_id: str) -> None:
        with self.owned_lock:
            self.owned_jobs.discard(job_id)

    def lease_expiry(self) -> datetime:
        return _utcnow() + timedelta(seconds=self.settings.lease_seconds)

    def add_lease(self, job_id: str) -> None:
        expires = self.lease_expiry()
        try:
            self.leases.insert_one({'_id': job_id, 'expires': expires})
        except DuplicateKeyError:
            # A sweep of another process saw the job first and gave it
            # a lease.
            self.leases.update_one({'_id': job_id},
                                   {'$set': {'expires': expires}})

    def end_lease(self, job_id: str) -> None:
        self.disown(job_id)
        self.leases.delete_one({'_id': job_id})

    def renew_leases(self) -> None:
        with self.owned_lock:
            owned = list(self.owned_jobs)
        if owned:
            self.leases.update_many({'_id': {'$in': owned}},
                                    {'$set': {'expires': self.lease_expiry()}})

    def sweep(self) -> None:
        """Fail the jobs whose lease expired and apply the retention."""

        now = _utcnow()

        # Active jobs without a lease were written before this manager,
        # or their lease was lost. They get one now, so they fail one
        # lease from now unless a process renews it.
        active = self.jobs.distinct(
            'identifier', {'status': {'$in': ACTIVE_STATUSES}})
        leased = set(self.leases.distinct('_id', {'_id': {'$in': active}}))
        for job_id in set(active) - leased:
            try:
                self.leases.insert_one(
                    {'_id': job_id, 'expires': self.lease_expiry()})
            except DuplicateKeyError:
                pass  # its process, or another sweep, added it meanwhile

        expired = self.leases.distinct('_id', {'expires': {'$lt': now}})
        if expired:
            lease = self.settings.lease_seconds
            failed = {
                'status': JobStatus.failed.value,
                'message': (f'Job failed: the worker running it was lost '
                            f'(no heartbeat for {lease:g} s)'),
                END_KEY: _timestamp(),
                '_finished_at': now,
            }
            if UPDATED_KEY:
                failed[UPDATED_KEY] = failed[END_KEY]
            lost_jobs = {'identifier': {'$in': expired},
                         'status': {'$in': ACTIVE_STATUSES}}
            lost = self.jobs.distinct('identifier', lost_jobs)
            self.jobs.update_many(lost_jobs, {'$set': failed})
            self.leases.delete_many(
                {'_id': {'$in': expired}, 'expires': {'$lt': now}})

            # A worker killed between storing a result and marking the
            # job successful leaves a result that nothing would serve.
            for job_id in lost:
                self.delete_result(job_id, None)
            if lost:
                LOGGER.warning(
                    f'Marked {len(lost)} jobs as failed in '
                    f'{self.jobs.full_name}, because their worker was '
                    f'lost: {", ".join(lost[:10])}')

        if self.settings.retention_seconds is not None:
            self.remove_expired(
                now - timedelta(seconds=self.settings.retention_seconds))

    def remove_expired(self, cutoff: datetime) -> None:
        """Remove finished jobs that ended before ``cutoff``."""

        expired = {
            'status': {'$in': FINAL_STATUSES},
            '$or': [
                {'_finished_at': {'$lt': cutoff}},
                # Jobs written before this manager only have the time
                # string, which sorts like the time it gives.
                {'_finished_at': {'$exists': False},
                 END_KEY: {'$lt': cutoff.strftime(DATETIME_FORMAT)}},
            ]}
        removed = 0
        while True:
            batch = list(self.jobs.find(
                expired, {'identifier': 1, 'location': 1},
                limit=RETENTION_BATCH))
            for document in batch:
                self.jobs.delete_one({'_id': document['_id']})
                self.delete_result(document.get('identifier'),
                                   document.get('location'))
            removed += len(batch)
            if len(batch) < RETENTION_BATCH:
                break
        if removed:
            LOGGER.info(f'Removed {removed} jobs past their retention from '
                        f'{self.jobs.full_name}')

    def delete_result(self, job_id, location) -> None:
        """Delete a job's result files in GridFS and in ``output_dir``."""

        if isinstance(job_id, str):
            for grid_file in self.results.find(
                    {'metadata.identifier': job_id}):
                try:
                    self.results.delete(grid_file._id)
                except NoFile:
                    pass  # a concurrent deletion of the same job won

        if (isinstance(location, str) and location not in ('', 'None')
                and not location.startswith(GRIDFS_LOCATION_PREFIX)):
            try:
                Path(location).unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                LOGGER.error(f'Cannot delete result file {location} of job '
                             f'{job_id}: {err}')

    def _maintain(self) -> None:
        heartbeat = self.settings.lease_seconds / 3
        sweep_every = min(self.settings.lease_seconds, 60.0)
        last_sweep = _utcnow()
        failures = 0
        while not self.stopping.wait(heartbeat):
            try:
                self.renew_leases()
                if (_utcnow() - last_sweep).total_seconds() >= sweep_every:
                    self.sweep()
                    last_sweep = _utcnow()
                failures = 0
            except PyMongoError as err:
                # Logged once per run of failures, so that a long outage
                # does not flood the log.
                failures += 1
                if failures == 1:
                    LOGGER.error(f'Lease renewal on {self.jobs.full_name} '
                                 f'failed, will retry: {err}')
            except Exception:
                # The thread must outlive any error: without it, the
                # leases of this process's jobs lapse and they fail.
                LOGGER.exception(f'Lease renewal on {self.jobs.full_name} '
                                 f'failed, will retry')


_STORES: Dict[tuple, JobStore] = {}
_STORES_LOCK = threading.Lock()
_CURRENT = threading.local()  # the job that this thread executes

# Before 0.17, jobs whose async handler waits for add_job in the thread
# it started, by identifier.
_PENDING_ADDS: Dict[str, threading.Event] = {}
_PENDING_LOCK = threading.Lock()


def stores() -> list:
    """Return the job stores that this process has opened."""

    return list(_STORES.values())


def _forget_stores_after_fork() -> None:
    # A client must not be shared with a forked child (gunicorn
    # --preload). The child creates its own on first use.
    # Another thread may have held a lock at the fork, and no thread of
    # the parent runs in the child to release it, so the locks are new.
    global _STORES_LOCK, _PENDING_LOCK
    _STORES.clear()
    _STORES_LOCK = threading.Lock()
    _PENDING_ADDS.clear()
    _PENDING_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_stores_after_fork)


class GridFSResultFile:
    """One job's result file in GridFS, written by pygeoapi's handler.

    pygeoapi's handler writes a result with
    ``(output_dir / filename).open(mode, encoding=...)`` and then stores
    ``str(output_dir / filename)`` as the job's location. This object
    takes that place when no ``output_dir`` is configured, so each
    release's own handler stores the result in GridFS before it marks
    the job successful.
    """

    def __init__(self, manager: 'MongoDBManager', filename: str):
        self.manager = manager
        self.filename = filename

    def __str__(self) -> str:
        bucket = self.manager.settings.gridfs_bucket
        return f'{GRIDFS_LOCATION_PREFIX}{bucket}/{self.filename}'

    def open(self, mode: str = 'r', encoding: Optional[str] = None):
        if 'w' not in mode:
            raise ValueError(f'GridFS results are write-only here, not '
                             f'{mode!r}: read them with get_job_result')
        return _GridFSWriter(self, binary='b' in mode,
                             encoding=encoding or 'utf-8')


class _GridFSWriter(io.BytesIO):
    """A file object that uploads what was written when it is closed."""

    def __init__(self, target: GridFSResultFile, binary: bool, encoding):
        super().__init__()
        self.target = target
        self.binary = binary
        self.encoding = encoding

    def write(self, data) -> int:
        if not self.binary:
            data = data.encode(self.encoding)
        return super().write(data)

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.target.manager._upload_result(
                self.target.filename, self.getvalue())
        return super().__exit__(exc_type, exc, traceback)


class GridFSOutputDir:
    """Stand-in for ``output_dir`` that makes results GridFS files."""

    def __init__(self, manager: 'MongoDBManager'):
        self.manager = manager

    def __truediv__(self, filename: str) -> GridFSResultFile:
        return GridFSResultFile(self.manager, filename)

    def __str__(self) -> str:
        return f'{GRIDFS_LOCATION_PREFIX}{self.manager.settings.gridfs_bucket}'


class MongoDBManager(BaseManager):
    """Process manager that keeps jobs and results in MongoDB."""

    def __init__(self, manager_def: dict):
        """
        Initialize object

        :param manager_def: manager definition: ``connection`` (a
                            ``mongodb://`` or ``mongodb+srv://`` URI) and
                            the optional keys ``output_dir``, ``database``,
                            ``collection``, ``gridfs_bucket``,
                            ``timeout_seconds``, ``lease_seconds`` and
                            ``retention_seconds``

        :raises ManagerConfigError: if a key is missing or invalid
        :returns: `pygeoapi.process.manager.mongodb_.MongoDBManager`
        """

        super().__init__(manager_def)
        self.settings = Settings(manager_def)
        self.is_async = True
        self.supports_subscribing = True
        if self.output_dir is None:
            self.output_dir = GridFSOutputDir(self)

    def __repr__(self) -> str:
        return (f'<MongoDBManager> {redact_uri(self.settings.uri)} '
                f'{self.settings.database}.{self.settings.collection}')

    def _store(self) -> JobStore:
        """Return this process's store, connecting on first use."""

        key = self.settings.key()
        store = _STORES.get(key)
        if store is not None and store.pid == os.getpid():
            return store
        with _STORES_LOCK:
            store = _STORES.get(key)
            if store is None or store.pid != os.getpid():
                store = JobStore(self.settings)
                try:
                    self._call(store.start, 'connect')
                except MongoDBManagerError:
                    store.client.close()
                    raise
                _STORES[key] = store
        return store

    def _call(self, operation, description: str, *args, **kwargs):
        """Run a database operation, turning server failures into one error.

        :raises MongoDBManagerError: naming the operation and the server
        """

        try:
            return operation(*args, **kwargs)
        except PyMongoError as err:
            message = (f'MongoDB {description} failed on '
                       f'{redact_uri(self.settings.uri)}: {err}')
            LOGGER.error(message)
            raise MongoDBManagerError(message) from err

    @staticmethod
    def _public(document: dict) -> dict:
        """Return the job fields of a document, ready for ``json.dumps``.

        ``_id`` and this manager's own fields are left out. Dates and
        ObjectIds, which jobs written by other tools may contain, become
        strings.
        """

        job = {}
        for key, value in document.items():
            if key.startswith('_'):
                continue
            if isinstance(value, datetime):
                value = value.astimezone(timezone.utc).strftime(
                    DATETIME_FORMAT)
            elif isinstance(value, ObjectId):
                value = str(value)
            job[key] = value
        return job

    def _job_not_found(self, job_id):
        LOGGER.debug(f'Job {shown(job_id)} not found')
        if JobNotFoundError is not None:
            raise JobNotFoundError(f'job {shown(job_id)} not found')
        return None

    @staticmethod
    def _identifier(job_id) -> str:
        """Return the identifier as the string it is matched as.

        pygeoapi 0.14 takes the identifier from the request body, so it
        can be any JSON value. A value such as ``{'$ne': None}`` is
        matched as its text, never sent as a query operator.
        """

        return job_id if isinstance(job_id, str) else str(job_id)

    def _find_job(self, job_id) -> Optional[dict]:
        job_id = self._identifier(job_id)
        store = self._store()
        return self._call(store.jobs.find_one,
                          f'lookup of job {shown(job_id)}',
                          {'identifier': job_id})

    def get_jobs(self, status: JobStatus = None, limit: Optional[int] = None,
                 offset: Optional[int] = None):
        """
        Get process jobs, newest first, optionally filtered by status

        :param status: job status (`JobStatus` or its value), default all
        :param limit: maximum number of jobs to return, default all
        :param offset: number of matching jobs to skip, default 0

        :raises ValueError: if status, limit or offset is invalid
        :returns: from pygeoapi 0.18, `dict` of ``jobs`` (list of job
                  dicts) and ``numberMatched`` (count of all matching
                  jobs); before 0.18, the list of job dicts
        """

        query = {}
        if status is not None:
            value = getattr(status, 'value', status)
            if value not in JobStatus.__members__:
                raise ValueError(
                    f'invalid job status {status!r}: use one of '
                    f'{", ".join(JobStatus.__members__)}')
            query['status'] = value
        limit = self._count_argument('limit', limit)
        offset = self._count_argument('offset', offset) or 0

        if limit is not None and limit > MAX_LIMIT:
            limit = None

        store = self._store()
        LOGGER.debug(f'Querying jobs {query}, limit {limit}, '
                     f'offset {offset}')
        if limit == 0 or offset >= MAX_SKIP:
            documents = []
        else:
            cursor = store.jobs.find(query).sort(
                [(START_KEY, DESCENDING), ('_id', DESCENDING)]).skip(offset)
            if limit is not None:
                cursor = cursor.limit(limit)
            documents = self._call(list, 'listing of jobs', cursor)
        jobs = [self._public(document) for document in documents]

        if not PAGED_GET_JOBS:
            return jobs

        # A page shorter than the limit is the last one, so it gives the
        # count without another query, which costs a scan on FerretDB.
        if (limit is None or len(jobs) < limit) and (jobs or not offset):
            matched = offset + len(jobs)
        else:
            matched = self._call(store.jobs.count_documents,
                                 'count of jobs', query)
        return {'jobs': jobs, 'numberMatched': matched}

    @staticmethod
    def _count_argument(name: str, value) -> Optional[int]:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f'invalid {name} {value!r}: give an integer '
                             f'of 0 or more, or None')
        return value

    def add_job(self, job_metadata: dict) -> str:
        """
        Add a job

        :param job_metadata: `dict` of job metadata, with ``identifier``

        :raises ValueError: if a job with that identifier exists
        :returns: `str` added job identifier
        """

        job_id = self._identifier(job_metadata['identifier'])
        if not job_id or '\0' in job_id:
            raise ValueError(f'invalid job identifier {shown(job_id)}: it '
                             f'must be a non-empty string without NUL')
        if isinstance(self.output_dir, Path) and re.search(r'[/\\]', job_id):
            # pygeoapi names the result file after the identifier, so a
            # separator would write it outside output_dir.
            raise ValueError(f'invalid job identifier {shown(job_id)}: it '
                             f'must not contain / or \\ when output_dir is '
                             f'set')
        store = self._store()

        # insert_one adds an ObjectId _id to the dict it is given, and
        # pygeoapi goes on using this dict, so a copy is inserted.
        document = dict(job_metadata, identifier=job_id)
        LOGGER.debug(f'Adding job {shown(job_id)}')
        try:
            self._call(store.jobs.insert_one, f'insert of job {shown(job_id)}',
                       document)
        except MongoDBManagerError as err:
            if isinstance(err.__cause__, DuplicateKeyError):
                raise ValueError(
                    f'job {shown(job_id)} exists already: identifiers must be '
                    f'unique') from None
            raise

        # The lease follows the job: a sweep between the two inserts
        # gives a job without a lease one of its own.
        if document.get('status') in ACTIVE_STATUSES:
            store.own(job_id)
            self._call(store.add_lease, f'lease of job {shown(job_id)}',
                       job_id)
        with _PENDING_LOCK:
            added = _PENDING_ADDS.get(job_id)
        if added is not None:
            added.set()
        return job_id

    def update_job(self, job_id: str, update_dict: dict) -> bool:
        """
        Update a job with one ``update_one``, atomic on MongoDB

        A job that was deleted, or that has ended, is not changed. If such
        an update carries a result location that the stored job does not
        serve, that result is deleted, so no result outlives its job.

        :param job_id: job identifier
        :param update_dict: `dict` of property updates

        :raises ValueError: if a key is not a plain field name
        :returns: `bool` of whether the job was updated
        """

        for key in update_dict:
            if not isinstance(key, str) or key.startswith(('$', '_')):
                raise ValueError(f'invalid job field {key!r}: field names '
                                 f'must not start with $ or _')
        job_id = self._identifier(job_id)
        store = self._store()
        changes = dict(update_dict)
        ends = changes.get('status') in FINAL_STATUSES
        if ends:
            changes['_finished_at'] = _utcnow()

        LOGGER.debug(f'Updating job {shown(job_id)}: {sorted(update_dict)}')
        result = self._call(
            store.jobs.update_one, f'update of job {shown(job_id)}',
            {'identifier': job_id, 'status': {'$nin': FINAL_STATUSES}},
            {'$set': changes})
        if result.matched_count:
            if ends:
                self._call(store.end_lease, f'lease of job {shown(job_id)}',
                           job_id)
            return True

        LOGGER.warning(f'Job {shown(job_id)} was not updated: it was deleted '
                       f'or has ended')
        self._call(store.end_lease, f'lease of job {shown(job_id)}', job_id)

        # A result stored for a job that was deleted, or that a sweep
        # failed, would never be served. An update without a location,
        # such as pygeoapi's "failed" after a failed success
        # notification, must not touch the result of a successful job.
        location = update_dict.get('location')
        if location and location != 'None':
            document = self._call(
                store.jobs.find_one, f'lookup of job {shown(job_id)}',
                {'identifier': job_id}, {'status': 1, 'location': 1})
            if (document is None
                    or document.get('status') != JobStatus.successful.value
                    or document.get('location') != location):
                self._call(store.delete_result,
                           f'cleanup of job {shown(job_id)}', job_id, location)
        return False

    def get_job(self, job_id: str) -> Optional[dict]:
        """
        Get a job

        :param job_id: job identifier

        :raises JobNotFoundError: from pygeoapi 0.16, if the job_id does not
                                  correspond to a known job
        :returns: `dict` of the job; ``None`` for an unknown job before 0.16
        """

        document = self._find_job(job_id)
        if document is None:
            return self._job_not_found(job_id)
        return self._public(document)

    def get_job_result(self, job_id: str) -> Tuple[Optional[str], Any]:
        """
        Get the output of a successful job

        :param job_id: job identifier

        :raises JobNotFoundError: from pygeoapi 0.16, if the job_id does not
                                  correspond to a known job
        :raises JobResultNotFoundError: if the result cannot be read
        :returns: `tuple` of MIME type and output, which is decoded JSON
                  for JSON MIME types and `bytes` otherwise. It is
                  ``(None, None)`` for a job that has not succeeded and,
                  before 0.16, for an unknown job.
        """

        document = self._find_job(job_id)
        if document is None:
            self._job_not_found(job_id)
            return None, None
        if document.get('status') != JobStatus.successful.value:
            return None, None

        mimetype = document.get('mimetype')
        location = document.get('location')
        data = self._read_result(job_id, location)
        if mimetype in JSON_MIMETYPES:
            try:
                return mimetype, json.loads(data)
            except ValueError as err:
                self._result_not_found(job_id, f'invalid JSON: {err}')
        return mimetype, data

    def _read_result(self, job_id: str, location) -> bytes:
        if (isinstance(location, str)
                and location.startswith(GRIDFS_LOCATION_PREFIX)):
            store = self._store()
            files = self._call(
                lambda: list(store.results.find(
                    {'metadata.identifier': job_id},
                    sort=[('uploadDate', DESCENDING)], limit=1)),
                f'lookup of the result of job {shown(job_id)}')
            if not files:
                self._result_not_found(job_id, f'no file in {location}')
            return self._call(files[0].read,
                              f'read of the result of job {shown(job_id)}')

        if not location or location == 'None':
            self._result_not_found(job_id, 'no result location')
        try:
            return Path(location).read_bytes()
        except OSError as err:
            self._result_not_found(job_id, str(err))

    @staticmethod
    def _result_not_found(job_id: str, reason: str):
        message = f'result of job {shown(job_id)} not found: {reason}'
        LOGGER.error(message)
        if JobResultNotFoundError is not None:
            raise JobResultNotFoundError(message)
        raise MongoDBManagerError(message)

    def delete_job(self, job_id: str) -> bool:
        """
        Delete a job and its result

        :param job_id: job identifier

        :raises JobNotFoundError: from pygeoapi 0.16, if the job_id does not
                                  correspond to a known job
        :returns: `bool` of whether the job was deleted: ``True``, or
                  ``False`` for an unknown job before 0.16
        """

        job_id = self._identifier(job_id)
        store = self._store()
        LOGGER.debug(f'Deleting job {shown(job_id)}')
        document = self._call(
            store.jobs.find_one_and_delete,
            f'deletion of job {shown(job_id)}', {'identifier': job_id})
        if document is None:
            self._job_not_found(job_id)
            return False

        # The document goes first, so no client sees a job whose result
        # was already deleted.
        self._call(store.end_lease, f'lease of job {shown(job_id)}', job_id)
        self._call(store.delete_result,
                   f'deletion of job {shown(job_id)} result',
                   job_id, document.get('location'))
        return True

    def _upload_result(self, filename: str, data: bytes) -> None:
        job_id = getattr(_CURRENT, 'job_id', None)
        if job_id is None:
            raise MongoDBManagerError(
                f'result {filename!r} was written outside a job execution')
        store = self._store()
        LOGGER.debug(f'Storing result of job {shown(job_id)} in GridFS '
                     f'({len(data)} bytes)')
        self._call(store.results.upload_from_stream,
                   f'upload of the result of job {shown(job_id)}',
                   filename, io.BytesIO(data),
                   metadata={'identifier': job_id})

    def _execute_handler_async(self, p, job_id, *args, **kwargs):
        """
        Run pygeoapi's asynchronous execution handler for one job

        Before pygeoapi 0.17 the job is added by the thread that runs it,
        so a client could get 404 for the job that the 201 response has
        just announced. This waits until that thread has added the job,
        at most ``timeout_seconds``.

        :returns: what pygeoapi's handler returns
        """

        if ADDS_JOB_BEFORE_HANDLER:
            return super()._execute_handler_async(p, job_id, *args,
                                                  **kwargs)
        added = threading.Event()
        job_id_text = self._identifier(job_id)
        with _PENDING_LOCK:
            _PENDING_ADDS[job_id_text] = added
        try:
            response = super()._execute_handler_async(p, job_id, *args,
                                                      **kwargs)
            if not added.wait(self.settings.timeout_seconds):
                LOGGER.warning(f'Job {shown(job_id_text)} was not added '
                               f'within {self.settings.timeout_seconds:g} s')
            return response
        finally:
            with _PENDING_LOCK:
                _PENDING_ADDS.pop(job_id_text, None)

    def _execute_handler_sync(self, p, job_id, *args, **kwargs):
        """
        Run pygeoapi's synchronous execution handler for one job

        The handler's arguments after ``job_id`` differ between releases
        and are passed on as they are. This records which job the thread
        executes, so that the result is stored under its identifier.

        :returns: what pygeoapi's handler returns
        """

        previous = getattr(_CURRENT, 'job_id', None)
        _CURRENT.job_id = self._identifier(job_id)
        try:
            return super()._execute_handler_sync(p, job_id, *args, **kwargs)
        finally:
            _CURRENT.job_id = previous
            store = _STORES.get(self.settings.key())
            if store is not None:
                store.disown(self._identifier(job_id))


__all__ = ['MongoDBManager', 'MongoDBManagerError', 'ManagerConfigError',
           'redact_uri']
