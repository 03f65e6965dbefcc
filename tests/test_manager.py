"""Tests of MongoDBManager on its own, against a real server.

They run on whichever pygeoapi release is installed, patched with the
overlay, and check the behaviour that release expects of a manager.
"""

import json
import logging
import multiprocessing
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import bson
import gridfs
import pytest

import pygeoapi.process.manager.mongodb_ as mongodb_
from pygeoapi.plugin import load_plugin
from pygeoapi.process.manager.mongodb_ import (
    ManagerConfigError, MongoDBManager, MongoDBManagerError
)
from pygeoapi.util import yaml_load

from tests.helpers import (
    END_KEY, FINAL, RAISES_NOT_FOUND, RELEASE, START_KEY, execute,
    job_metadata, wait_for_status, wait_for_threads
)
from tests.processes import binary_result

HOSTILE_IDENTIFIERS = [
    '{"$ne": null}',
    {'$ne': None},
    {'$gt': ''},
    '../..',
    '../../etc/passwd',
    'x' * 100_000,
    'jöb-雪-🙂',
    '',
    ' ',
    '.*',
    '\0',
]


def assert_not_found(manager, job_id):
    """Check that every lookup of ``job_id`` reports an unknown job."""

    if RAISES_NOT_FOUND:
        from pygeoapi.process.base import JobNotFoundError
        with pytest.raises(JobNotFoundError):
            manager.get_job(job_id)
        with pytest.raises(JobNotFoundError):
            manager.get_job_result(job_id)
        with pytest.raises(JobNotFoundError):
            manager.delete_job(job_id)
    else:
        assert not manager.get_job(job_id)
        assert manager.get_job_result(job_id) == (None, None)
        assert manager.delete_job(job_id) is False


def listed_jobs(manager, **kwargs) -> list:
    result = manager.get_jobs(**kwargs)
    return result['jobs'] if isinstance(result, dict) else result


# Configuration

def test_config_defaults(mongodb_uri):
    manager = MongoDBManager({'name': 'MongoDB', 'connection': mongodb_uri})
    settings = manager.settings

    assert settings.database == 'job_manager_pygeoapi'
    assert settings.collection == 'jobs'
    assert settings.gridfs_bucket == 'job_results'
    assert settings.timeout_seconds == 5
    assert settings.lease_seconds == 60
    assert settings.retention_seconds is None
    assert isinstance(manager.output_dir, mongodb_.GridFSOutputDir)
    assert manager.is_async is True


def test_config_database_from_uri():
    manager = MongoDBManager({
        'name': 'MongoDB', 'connection': 'mongodb://127.0.0.1:1/ops_jobs'})

    assert manager.settings.database == 'ops_jobs'


def test_config_database_conflict():
    with pytest.raises(ManagerConfigError, match="'ops' differs"):
        MongoDBManager({'name': 'MongoDB', 'database': 'ops',
                        'connection': 'mongodb://127.0.0.1:1/other'})


@pytest.mark.parametrize('uri', [
    None,
    '',
    42,
    'http://127.0.0.1:27017/',
    'mongodb://',
    'mongodb://127.0.0.1:99999/',
    'mongodb://127.0.0.1/bad database',
    'mongodb://admin:s3cret@127.0.0.1/?notAnOption=1',
    'mongodb://admin:s3cret@${UNSET_VARIABLE}/',
])
def test_config_invalid_uri(uri):
    with pytest.raises(ManagerConfigError) as error:
        MongoDBManager({'name': 'MongoDB', 'connection': uri})

    message = str(error.value)
    assert 'server.manager.connection' in message
    assert 's3cret' not in message


@pytest.mark.parametrize('key, value', [
    ('lease_seconds', 0),
    ('lease_seconds', -5),
    ('lease_seconds', 'soon'),
    ('lease_seconds', True),
    ('timeout_seconds', float('inf')),
    ('retention_seconds', 'NaN'),
    ('collection', ''),
    ('collection', 'jobs$'),
    ('database', 42),
    ('gridfs_bucket', '.results'),
])
def test_config_invalid_value(key, value):
    with pytest.raises(ManagerConfigError) as error:
        MongoDBManager({'name': 'MongoDB', key: value,
                        'connection': 'mongodb://127.0.0.1:1/'})

    assert f'server.manager.{key}' in str(error.value)


def test_config_environment_substitution(monkeypatch, tmp_path):
    variables = {
        'JM_URI': 'mongodb://127.0.0.1:1/',
        'JM_OUTPUT': str(tmp_path),
        'JM_DATABASE': 'env_db',
        'JM_COLLECTION': 'env_jobs',
        'JM_BUCKET': 'env_results',
        'JM_TIMEOUT': '1.5',
        'JM_LEASE': '30',
        'JM_RETENTION': '86400',
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / 'manager.yml'
    config.write_text(
        'name: MongoDB\n'
        'connection: ${JM_URI}\n'
        'output_dir: ${JM_OUTPUT}\n'
        'database: ${JM_DATABASE}\n'
        'collection: ${JM_COLLECTION}\n'
        'gridfs_bucket: ${JM_BUCKET}\n'
        'timeout_seconds: ${JM_TIMEOUT}\n'
        'lease_seconds: ${JM_LEASE}\n'
        'retention_seconds: ${JM_RETENTION}\n')
    with config.open() as fh:
        manager = MongoDBManager(yaml_load(fh))
    settings = manager.settings

    assert settings.uri == 'mongodb://127.0.0.1:1/'
    assert str(manager.output_dir) == str(tmp_path)
    assert settings.database == 'env_db'
    assert settings.collection == 'env_jobs'
    assert settings.gridfs_bucket == 'env_results'
    assert settings.timeout_seconds == 1.5
    assert settings.lease_seconds == 30
    assert settings.retention_seconds == 86400


def test_plugin_registry_loads_manager(manager_def):
    manager = load_plugin('process_manager', manager_def)

    assert type(manager).__name__ == 'MongoDBManager'
    assert type(manager).__module__ == 'pygeoapi.process.manager.mongodb_'


def test_repr_and_log_hide_password(caplog):
    manager = MongoDBManager({
        'name': 'MongoDB', 'timeout_seconds': 0.3,
        'connection': 'mongodb://admin:s3cret@127.0.0.1:1/'})

    assert 's3cret' not in repr(manager)
    assert 'admin:***@127.0.0.1:1' in repr(manager)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(MongoDBManagerError) as error:
            manager.get_jobs()
    assert 's3cret' not in str(error.value)
    assert 's3cret' not in caplog.text
    assert caplog.text


# Listing jobs

@pytest.fixture
def stored_jobs(manager):
    """Add 30 jobs in shuffled order; return them newest first."""

    statuses = ['successful', 'failed', 'running', 'accepted', 'dismissed']
    jobs = [job_metadata(number, statuses[number % 5])
            for number in range(30)]
    for index in [7, 3, 29, 0, 15] + list(range(30)):
        job = jobs[index]
        try:
            manager.add_job(job)
        except ValueError:
            pass
    return list(reversed(jobs))


def test_get_jobs_shape_and_order(manager, stored_jobs):
    result = manager.get_jobs()

    if RELEASE >= (0, 18):
        assert set(result) == {'jobs', 'numberMatched'}
        assert result['numberMatched'] == 30
        jobs = result['jobs']
    else:
        assert isinstance(result, list)
        jobs = result
    assert [job['identifier'] for job in jobs] == [
        job['identifier'] for job in stored_jobs]
    assert jobs[0] == stored_jobs[0]


def test_get_jobs_contains_only_job_fields(manager, stored_jobs):
    jobs = listed_jobs(manager)

    for job in jobs:
        assert not [key for key in job if key.startswith('_')]
        assert set(job) == set(stored_jobs[0])
    json.dumps(manager.get_jobs())


@pytest.mark.skipif(RELEASE < (0, 18), reason='get_jobs pages from 0.18')
def test_get_jobs_pages(manager, stored_jobs):
    identifiers = [job['identifier'] for job in stored_jobs]
    pages = []
    for offset in range(0, 30, 7):
        page = manager.get_jobs(limit=7, offset=offset)
        assert page['numberMatched'] == 30
        pages.extend(job['identifier'] for job in page['jobs'])

    assert pages == identifiers


@pytest.mark.skipif(RELEASE < (0, 18), reason='get_jobs pages from 0.18')
@pytest.mark.parametrize('limit, offset, expected', [
    (0, 0, 0),
    (5, 28, 2),
    (5, 30, 0),
    (5, 10 ** 6, 0),
    (2 ** 70, 0, 30),
    (3, 2 ** 70, 0),
    (None, 25, 5),
    (None, None, 30),
])
def test_get_jobs_odd_limits(manager, stored_jobs, limit, offset, expected):
    page = manager.get_jobs(limit=limit, offset=offset)

    assert len(page['jobs']) == expected
    assert page['numberMatched'] == 30


@pytest.mark.parametrize('name, value', [
    ('limit', -1), ('offset', -1), ('limit', '5'), ('offset', 1.5),
    ('limit', True), ('offset', {'$gt': 0}),
])
def test_get_jobs_rejects_invalid_paging(manager, name, value):
    if RELEASE < (0, 18):
        pytest.skip('get_jobs takes no limit or offset before 0.18')
    with pytest.raises(ValueError, match=f'invalid {name}'):
        manager.get_jobs(**{name: value})


@pytest.mark.parametrize('status', ['successful', 'running', 'accepted'])
def test_get_jobs_filters_status(manager, stored_jobs, status):
    from pygeoapi.util import JobStatus
    expected = [job['identifier'] for job in stored_jobs
                if job['status'] == status]

    for value in (status, JobStatus[status]):
        result = manager.get_jobs(status=value)
        jobs = result['jobs'] if isinstance(result, dict) else result
        assert [job['identifier'] for job in jobs] == expected
        if isinstance(result, dict):
            assert result['numberMatched'] == len(expected) == 6


def test_get_jobs_rejects_unknown_status(manager):
    with pytest.raises(ValueError, match="invalid job status 'done'"):
        manager.get_jobs(status='done')


# Single jobs and hostile identifiers

def test_get_job_returns_job(manager):
    job = job_metadata(1, 'running')
    manager.add_job(job)

    assert manager.get_job(job['identifier']) == job


def test_add_job_leaves_metadata_unchanged(manager):
    job = job_metadata(1, 'accepted')
    before = dict(job)

    assert manager.add_job(job) == job['identifier']
    assert job == before


def test_add_job_rejects_duplicate(manager):
    job = job_metadata(1, 'accepted')
    manager.add_job(job)

    with pytest.raises(ValueError, match='exists already'):
        manager.add_job(dict(job))
    assert len(listed_jobs(manager)) == 1


def test_unknown_job_not_found(manager):
    manager.add_job(job_metadata(1))

    assert_not_found(manager, str(uuid.uuid1()))


@pytest.mark.parametrize('identifier', HOSTILE_IDENTIFIERS,
                         ids=lambda value: repr(value)[:20])
def test_hostile_identifier_not_found(manager, identifier):
    for number, status in enumerate(['successful', 'running', 'failed']):
        manager.add_job(job_metadata(number, status))

    assert_not_found(manager, identifier)
    assert manager.update_job(identifier, {'progress': 1}) is False
    assert len(listed_jobs(manager)) == 3


def test_dict_identifier_matched_as_text(manager):
    text = str({'$ne': None})
    manager.add_job(job_metadata(1, identifier=text))
    manager.add_job(job_metadata(2))

    assert manager.get_job({'$ne': None})['identifier'] == text


# Updates

def test_update_job_changes_fields(manager):
    job = job_metadata(1, 'accepted')
    manager.add_job(job)

    assert manager.update_job(job['identifier'], {
        'status': 'running', 'progress': 50, 'message': 'half way'})
    stored = manager.get_job(job['identifier'])
    assert stored['status'] == 'running'
    assert stored['progress'] == 50
    assert stored['message'] == 'half way'
    assert stored['process_id'] == 'echo'


def test_update_job_unknown_returns_false(manager):
    assert manager.update_job(str(uuid.uuid1()), {'progress': 9}) is False
    assert listed_jobs(manager) == []


def test_update_job_after_end_is_ignored(manager):
    job = job_metadata(1, 'running')
    manager.add_job(job)
    manager.update_job(job['identifier'], {'status': 'failed'})

    assert manager.update_job(job['identifier'],
                              {'status': 'running', 'progress': 99}) is False
    assert manager.get_job(job['identifier'])['status'] == 'failed'


@pytest.mark.parametrize('key', ['$set', '_lease_expires', '_id'])
def test_update_job_rejects_operator_keys(manager, key):
    job = job_metadata(1, 'running')
    manager.add_job(job)

    with pytest.raises(ValueError, match='invalid job field'):
        manager.update_job(job['identifier'], {key: 1})
    assert manager.get_job(job['identifier']) == job


def test_update_job_concurrent_threads(manager):
    jobs = [job_metadata(n, 'running') for n in range(6)]
    for job in jobs:
        manager.add_job(job)
    results = []

    def update_job(job_id):
        for count in range(40):
            results.append(manager.update_job(job_id, {'progress': count}))
        results.append(manager.update_job(job_id, {'status': 'successful'}))

    threads = [threading.Thread(target=update_job, args=(job['identifier'],))
               for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 246
    assert all(results)
    for job in jobs:
        stored = manager.get_job(job['identifier'])
        assert stored['progress'] == 39
        assert stored['status'] == 'successful'


def test_update_job_same_job_from_threads(manager, server_is_ferretdb):
    if server_is_ferretdb:
        pytest.xfail('FerretDB 1.x applies an update as read, modify and '
                     'write, so concurrent updates of one document are lost')
    job = job_metadata(1, 'running')
    manager.add_job(job)
    job_id = job['identifier']
    results = []

    def update_field(field):
        for count in range(40):
            results.append(manager.update_job(job_id, {field: count}))

    threads = [threading.Thread(target=update_field, args=(f'field_{n}',))
               for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = manager.get_job(job_id)
    assert all(results)
    for n in range(6):
        assert stored[f'field_{n}'] == 39


def _update_in_process(manager_def, job_ids, queue):
    manager = MongoDBManager(manager_def)
    outcomes = []
    for count in range(20):
        for job_id in job_ids:
            outcomes.append(manager.update_job(job_id, {'progress': count}))
    queue.put(all(outcomes) and len(outcomes) == 20 * len(job_ids))


def test_update_job_concurrent_processes(manager, manager_def):
    jobs = [job_metadata(n, 'running') for n in range(9)]
    for job in jobs:
        manager.add_job(job)
    identifiers = [job['identifier'] for job in jobs]
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    processes = [context.Process(target=_update_in_process, args=(
        manager_def, identifiers[n::3], queue)) for n in range(3)]
    for process in processes:
        process.start()
    outcomes = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    assert outcomes == [True, True, True]
    for job_id in identifiers:
        assert manager.get_job(job_id)['progress'] == 19
    assert len(listed_jobs(manager)) == 9


# Results

RESULT_CASES = [
    ('application/json', {'value': 'snow ❄ and "quotes"'},
     {'id': 'echo', 'value': 'snow ❄ and "quotes"'}),
    ('text/plain', {'value': 'Grüße\nline two'},
     'Grüße\nline two'.encode()),
    ('text/csv', {'value': 'a,b\n1,2\n'}, b'a,b\n1,2\n'),
    ('image/png', {'size': 4096}, binary_result(4096)),
    ('application/octet-stream', {'size': 20 * 1024 * 1024},
     binary_result(20 * 1024 * 1024)),
]


@pytest.fixture(params=['gridfs', 'output_dir'])
def result_manager(request, manager_def, tmp_path):
    if request.param == 'output_dir':
        manager_def = dict(manager_def, output_dir=str(tmp_path))
    return MongoDBManager(manager_def)


@pytest.mark.parametrize('mimetype, inputs, expected', RESULT_CASES,
                         ids=[case[0] for case in RESULT_CASES])
@pytest.mark.parametrize('is_async', [False, True], ids=['sync', 'async'])
def test_result_round_trip(result_manager, mimetype, inputs, expected,
                           is_async):
    job_id = execute(result_manager, dict(inputs, mimetype=mimetype),
                     is_async)
    job = wait_for_status(result_manager, job_id, FINAL)

    assert job['status'] == 'successful', job['message']
    assert job['mimetype'] == mimetype
    assert result_manager.get_job_result(job_id) == (mimetype, expected)


def test_result_stored_in_gridfs(manager, mongo_client, database_name):
    job_id = execute(manager, {'mimetype': 'text/plain', 'value': 'abc'})
    bucket = gridfs.GridFSBucket(mongo_client[database_name],
                                 bucket_name='job_results')
    files = list(bucket.find({'metadata.identifier': job_id}))
    document = mongo_client[database_name]['jobs'].find_one(
        {'identifier': job_id})

    assert len(files) == 1
    assert files[0].read() == b'abc'
    assert document['location'].startswith('gridfs:job_results/')
    # The result was complete before the job was marked successful.
    assert files[0].upload_date <= document['_finished_at']


def test_result_stored_before_success(manager):
    # A client polling the job must never find it successful without a
    # result, so each poll that finds success reads the result at once.
    job_ids = [execute(manager, {'mimetype': 'text/plain',
                                 'value': f'job {n}', 'sleep': 0.02}, True)
               for n in range(10)]
    seen = {}
    deadline = time.monotonic() + 30
    while len(seen) < len(job_ids) and time.monotonic() < deadline:
        for job_id in job_ids:
            if job_id not in seen and manager.get_job(
                    job_id)['status'] == 'successful':
                seen[job_id] = manager.get_job_result(job_id)

    assert len(seen) == 10
    for n, job_id in enumerate(job_ids):
        assert seen[job_id] == ('text/plain', f'job {n}'.encode())


def test_failed_job_has_no_result(manager):
    job_id = execute(manager, {'fail': True})
    job = manager.get_job(job_id)

    assert job['status'] == 'failed'
    assert manager.get_job_result(job_id) == (None, None)


def test_result_missing_file_raises(manager, jobs_collection):
    job = job_metadata(1, 'successful')
    job.update(location='/nonexistent/result.json',
               mimetype='application/json')
    jobs_collection.insert_one(dict(job))

    with pytest.raises(Exception, match='not found') as error:
        manager.get_job_result(job['identifier'])
    if RAISES_NOT_FOUND:
        from pygeoapi.process.base import JobResultNotFoundError
        assert isinstance(error.value, JobResultNotFoundError)


# Deletion

def test_delete_job_removes_gridfs_result(manager, mongo_client,
                                          database_name):
    job_id = execute(manager, {'mimetype': 'image/png', 'size': 600_000})
    files = mongo_client[database_name]['job_results.files']
    chunks = mongo_client[database_name]['job_results.chunks']
    assert files.count_documents({}) == 1
    assert chunks.count_documents({}) > 1

    assert manager.delete_job(job_id) is True
    assert_not_found(manager, job_id)
    assert files.count_documents({}) == 0
    assert chunks.count_documents({}) == 0


def test_delete_job_removes_result_file(manager_def, tmp_path):
    manager = MongoDBManager(dict(manager_def, output_dir=str(tmp_path)))
    job_id = execute(manager, {'value': 'on disk'})
    assert [path.name for path in tmp_path.iterdir()] == [f'echo-{job_id}']

    assert manager.delete_job(job_id) is True
    assert list(tmp_path.iterdir()) == []
    assert_not_found(manager, job_id)


@pytest.mark.parametrize('output', ['gridfs', 'output_dir'])
def test_delete_running_job_stays_deleted(manager_def, tmp_path,
                                          mongo_client, database_name,
                                          output):
    results = tmp_path / 'results'
    results.mkdir()
    if output == 'output_dir':
        manager_def = dict(manager_def, output_dir=str(results))
    manager = MongoDBManager(manager_def)
    release = tmp_path / 'release'
    started = tmp_path / 'started'

    job_id = execute(manager, {
        'mimetype': 'text/plain', 'value': 'late', 'started': str(started),
        'wait_for': str(release)}, True)
    wait_for_status(manager, job_id, ['accepted', 'running'])
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert manager.delete_job(job_id) is True
    release.touch()
    wait_for_threads()

    assert_not_found(manager, job_id)
    assert mongo_client[database_name]['jobs'].count_documents({}) == 0
    assert mongo_client[database_name][
        'job_results.files'].count_documents({}) == 0
    assert list(results.iterdir()) == []


# Indexes and clients

def test_indexes_created_on_first_use(manager, jobs_collection):
    manager.get_jobs()
    indexes = jobs_collection.index_information()
    keys = {tuple(index['key']): index for index in indexes.values()}

    assert keys[(('identifier', 1),)].get('unique') is True
    assert ((START_KEY, -1), ('_id', -1)) in keys
    assert (('status', 1), (START_KEY, -1), ('_id', -1)) in keys


def test_one_client_per_process(manager_def):
    first = MongoDBManager(manager_def)
    second = MongoDBManager(dict(manager_def))
    first.get_jobs()
    second.add_job(job_metadata(1))
    client = first._store().client

    for _ in range(20):
        second.get_jobs()
    assert second._store().client is client
    assert first._store().client is client


def _use_in_child(manager, parent_client_id, queue):
    job = job_metadata(2)
    manager.add_job(job)
    store = manager._store()
    queue.put((id(store.client) != parent_client_id,
               manager.get_job(job['identifier'])['identifier']
               == job['identifier']))


def test_forked_process_gets_own_client(manager):
    manager.add_job(job_metadata(1))
    parent_client = manager._store().client
    context = multiprocessing.get_context('fork')
    queue = context.Queue()
    child = context.Process(target=_use_in_child,
                            args=(manager, id(parent_client), queue))
    child.start()
    own_client, found = queue.get(timeout=30)
    child.join(timeout=30)

    assert own_client is True
    assert found is True
    assert child.exitcode == 0
    assert len(listed_jobs(manager)) == 2


# Leases, lost jobs and retention

def test_running_job_keeps_its_lease(manager_def, tmp_path):
    manager = MongoDBManager(dict(manager_def, lease_seconds=2))
    release = tmp_path / 'release'
    job_id = execute(manager, {'wait_for': str(release)}, True)
    time.sleep(5)

    assert manager.get_job(job_id)['status'] in ('accepted', 'running')
    release.touch()
    assert wait_for_status(manager, job_id, FINAL)['status'] == 'successful'


def test_expired_lease_marks_job_failed(manager_def, jobs_collection,
                                        mongo_client, database_name):
    manager = MongoDBManager(dict(manager_def, lease_seconds=1))
    job = job_metadata(1, 'running')
    jobs_collection.insert_one(dict(job))
    mongo_client[database_name]['jobs_leases'].insert_one({
        '_id': job['identifier'],
        'expires': datetime.now(timezone.utc) - timedelta(hours=1)})
    finished = job_metadata(2, 'successful')
    jobs_collection.insert_one(dict(finished))

    lost = wait_for_status(manager, job['identifier'], ['failed'], 10)
    assert 'worker running it was lost' in lost['message']
    assert lost[END_KEY]
    assert manager.get_job(finished['identifier'])['status'] == 'successful'


def test_retention_removes_old_jobs(manager_def, mongo_client,
                                    database_name, tmp_path):
    manager = MongoDBManager(dict(manager_def, lease_seconds=1,
                                  retention_seconds=2))
    old_id = execute(manager, {'mimetype': 'text/plain', 'value': 'old'})
    running = job_metadata(1, 'running')
    manager.add_job(running)
    database = mongo_client[database_name]
    assert database['job_results.files'].count_documents({}) == 1

    deadline = time.monotonic() + 20
    while database['jobs'].count_documents({'identifier': old_id}):
        assert time.monotonic() < deadline, 'old job was not removed'
        time.sleep(0.2)

    assert_not_found(manager, old_id)
    assert database['job_results.files'].count_documents({}) == 0
    assert manager.get_job(running['identifier'])['status'] == 'running'


# Databases written by pygeoapi's own MongoDB manager

def test_legacy_database_is_read(manager, jobs_collection, tmp_path):
    result_file = tmp_path / 'hello-world-legacy'
    result_file.write_text(json.dumps({'id': 'echo', 'value': 'legacy'}))
    legacy = []
    for number, status in enumerate(['successful', 'running', 'failed']):
        job = job_metadata(number, status)
        job['process_id'] = 'hello-world'
        if status == 'successful':
            job.update(location=str(result_file),
                       mimetype='application/json')
        legacy.append(job)
        # pygeoapi's manager inserts the dict itself: it gets an ObjectId.
        jobs_collection.insert_one(job)
        assert isinstance(job.pop('_id'), bson.ObjectId)

    listed = listed_jobs(manager)
    assert [job['identifier'] for job in listed] == [
        job['identifier'] for job in reversed(legacy)]
    json.dumps(listed)
    assert manager.get_job(legacy[0]['identifier']) == legacy[0]
    assert manager.get_job_result(legacy[0]['identifier']) == (
        'application/json', {'id': 'echo', 'value': 'legacy'})
    assert manager.update_job(legacy[1]['identifier'], {'progress': 60})
    assert manager.get_job(legacy[1]['identifier'])['progress'] == 60
    assert manager.delete_job(legacy[0]['identifier']) is True
    assert not result_file.exists()
    lease = jobs_collection.database['jobs_leases'].find_one(
        {'_id': legacy[1]['identifier']})
    assert lease['expires'] > datetime.now(timezone.utc)


# Server failures

def test_unreachable_server_fails_fast(caplog):
    manager = MongoDBManager({
        'name': 'MongoDB', 'timeout_seconds': 0.5,
        'connection': 'mongodb://127.0.0.1:1/'})
    calls = [
        lambda: manager.get_jobs(),
        lambda: manager.get_job('some-job'),
        lambda: manager.get_job_result('some-job'),
        lambda: manager.delete_job('some-job'),
        lambda: manager.add_job(job_metadata(1)),
        lambda: manager.update_job('some-job', {'progress': 1}),
    ]

    for call in calls:
        started = time.monotonic()
        with pytest.raises(MongoDBManagerError, match='127.0.0.1:1'):
            call()
        # Server selection gives up after 0.5 s; 3 s leaves room for a
        # slow machine, yet is ten times less than pymongo's default.
        assert time.monotonic() - started < 3
    assert 'connect failed' in caplog.text


# Failures found by trying to break the manager

def test_failed_notification_keeps_result(manager):
    # pygeoapi marks a job failed, with no location, when the success
    # notification to a subscriber raises after the job succeeded.
    job_id = execute(manager, {'mimetype': 'text/plain', 'value': 'kept'})

    assert manager.update_job(job_id, {
        'status': 'failed', 'location': None,
        'message': 'notification failed'}) is False
    assert manager.get_job(job_id)['status'] == 'successful'
    assert manager.get_job_result(job_id) == ('text/plain', b'kept')


def test_concurrent_deletes_of_one_job(manager, server_is_ferretdb):
    for _ in range(10):
        job_id = execute(manager, {'mimetype': 'image/png', 'size': 300_000})
        outcomes = []

        def delete():
            try:
                outcomes.append(manager.delete_job(job_id))
            except Exception as error:  # noqa: B902, collected below
                outcomes.append(type(error).__name__)

        threads = [threading.Thread(target=delete) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        unknown = ('JobNotFoundError' if RAISES_NOT_FOUND else False)
        assert set(outcomes) <= {True, unknown}, outcomes
        assert len(outcomes) == 3
        if server_is_ferretdb:
            # FerretDB 1.x reads, then deletes, so two concurrent deletes
            # can both find the job. Both then report it deleted.
            assert outcomes.count(True) >= 1
        else:
            assert outcomes.count(True) == 1
        assert_not_found(manager, job_id)


def test_duplicate_legacy_identifiers_served(manager, jobs_collection):
    job = job_metadata(1, 'successful')
    jobs_collection.insert_one(dict(job))
    jobs_collection.insert_one(dict(job, message='the copy'))
    other = job_metadata(2, 'running')
    jobs_collection.insert_one(dict(other))

    assert len(listed_jobs(manager)) == 3
    assert manager.get_job(job['identifier'])['identifier'] == (
        job['identifier'])
    assert manager.get_job(other['identifier'])['status'] == 'running'
    assert jobs_collection.count_documents({}) == 3


def test_lost_job_result_removed(manager_def, mongo_client, database_name):
    database = mongo_client[database_name]
    job = job_metadata(1, 'running')
    database['jobs'].insert_one(dict(job))
    database['jobs_leases'].insert_one({
        '_id': job['identifier'],
        'expires': datetime.now(timezone.utc) - timedelta(hours=1)})
    bucket = gridfs.GridFSBucket(database, bucket_name='job_results')
    bucket.upload_from_stream('echo-lost', b'half-written',
                              metadata={'identifier': job['identifier']})
    manager = MongoDBManager(dict(manager_def, lease_seconds=1))

    assert wait_for_status(manager, job['identifier'], ['failed'], 10)
    assert database['job_results.files'].count_documents({}) == 0


@pytest.mark.skipif(not RAISES_NOT_FOUND,
                    reason='before 0.16 an unknown job raises nothing')
def test_long_identifier_shortened_in_error(manager):
    from pygeoapi.process.base import JobNotFoundError
    with pytest.raises(JobNotFoundError) as error:
        manager.get_job('x' * 100_000)

    assert len(str(error.value)) < 200
    assert "'xxxx" in str(error.value)
