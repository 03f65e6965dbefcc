"""Fixtures: a real MongoDB-compatible server, managers and a pygeoapi app.

The server comes from ``tools/mongodb_server.py``: ``PYGEOAPI_MONGODB_URI``
when it is set, otherwise ``mongod``, ``ferretdb`` or a FerretDB build,
started for the session. Without any of them the session stops with a
message that explains how to provide one. Each test gets a database of its
own, dropped afterwards.
"""

import os
import sys
import uuid
from pathlib import Path

import pymongo
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))

import mongodb_server  # noqa: E402

APP_STORES = set()  # the session app's stores, which outlive each test


@pytest.fixture(scope='session')
def mongodb_uri():
    """Return the URI of the session's server."""

    try:
        with mongodb_server.provide_server() as uri:
            os.environ[mongodb_server.URI_VARIABLE] = uri
            yield uri
    except mongodb_server.ServerUnavailableError as err:
        pytest.exit(str(err), returncode=2)


@pytest.fixture(scope='session')
def mongo_client(mongodb_uri):
    client = pymongo.MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000,
                                 tz_aware=True)
    yield client
    client.close()


@pytest.fixture(scope='session')
def server_is_ferretdb(mongo_client):
    return 'ferretdbVersion' in mongo_client.admin.command('buildInfo')


@pytest.fixture
def database_name(mongo_client):
    """Return a new database name; the database is dropped afterwards."""

    name = f'test_{uuid.uuid4().hex[:16]}'
    yield name
    mongo_client.drop_database(name)


@pytest.fixture(autouse=True)
def close_stores():
    """Close the clients and lease threads that a test's managers opened.

    The session's pygeoapi app keeps its own, because its manager lives
    as long as the app.
    """

    try:
        from pygeoapi.process.manager.mongodb_ import stores
    except ImportError:
        # Without a patched pygeoapi (as for tests/test_apply.py) there
        # is nothing to close.
        yield
        return
    before = set(stores())
    yield
    for store in set(stores()) - before - APP_STORES:
        store.close()


@pytest.fixture
def manager_def(mongodb_uri, database_name):
    return {
        'name': 'MongoDB',
        'connection': mongodb_uri,
        'database': database_name,
        'output_dir': None,
        'lease_seconds': 60,
    }


@pytest.fixture
def manager(manager_def):
    from pygeoapi.process.manager.mongodb_ import MongoDBManager
    return MongoDBManager(manager_def)


@pytest.fixture
def jobs_collection(mongo_client, database_name):
    return mongo_client[database_name]['jobs']


@pytest.fixture(scope='session')
def app_database(mongo_client):
    name = f'test_app_{uuid.uuid4().hex[:12]}'
    yield name
    mongo_client.drop_database(name)


@pytest.fixture(scope='session')
def app_config(tmp_path_factory, mongodb_uri, app_database):
    """Return the config file of the session's pygeoapi app."""

    from tests.app import write_config
    return write_config(tmp_path_factory.mktemp('app'), app_database)


@pytest.fixture(scope='session')
def client(app_config):
    """Return a test client of pygeoapi's Flask app with our manager."""

    from tests.app import flask_client
    from pygeoapi.process.manager.mongodb_ import stores
    client = flask_client(app_config)
    before = set(stores())
    assert client.get('/jobs?f=json').status_code == 200
    APP_STORES.update(set(stores()) - before)
    return client


@pytest.fixture
def app_jobs(client, mongo_client, app_database):
    """Return the app's jobs collection, emptied before the test."""

    collection = mongo_client[app_database]['jobs']
    collection.delete_many({})
    return collection
