"""Time single pymongo operations on the server, at 1,000 and 10,000 jobs.

This shows how the server's cost per lookup, update, count and page
grows with stored jobs, separately from any job manager. It drops and
refills the ``probe.jobs`` collection, with the indexes our manager
creates, and prints the mean of 20 calls per operation::

    python3 tools/mongodb_server.py run -- \\
        build/bench/venv-patched/bin/python benchmarks/server_probe.py
"""

import os
import sys
import time
import uuid

from pymongo import ASCENDING, DESCENDING, MongoClient

CALLS = 20  # calls timed per operation


def main() -> int:
    uri = os.environ.get('PYGEOAPI_MONGODB_URI')
    if not uri:
        sys.exit('error: PYGEOAPI_MONGODB_URI is not set: run this under '
                 'python3 tools/mongodb_server.py run --')
    collection = MongoClient(uri).probe.jobs
    for count in (1000, 10000):
        collection.drop()
        collection.create_index([('identifier', ASCENDING)], unique=True)
        collection.create_index([('started', DESCENDING),
                                 ('_id', DESCENDING)])
        ids = [str(uuid.uuid1()) for _ in range(count)]
        # Each job's _id is its identifier too, so that lookups by _id,
        # which a server may treat apart from other fields, are timed.
        collection.insert_many([
            {'_id': job_id, 'identifier': job_id,
             'started': f'2026-{number:08d}', 'status': 'successful',
             'message': 'x' * 50}
            for number, job_id in enumerate(ids)])
        middle = ids[count // 2]

        operations = {
            'find_one identifier':
                lambda: collection.find_one({'identifier': middle}),
            'find_one _id': lambda: collection.find_one({'_id': middle}),
            'update_one _id and status': lambda: collection.update_one(
                {'_id': middle, 'status': {'$nin': ['failed']}},
                {'$set': {'progress': 5}}),
            'update_one _id': lambda: collection.update_one(
                {'_id': middle}, {'$set': {'progress': 5}}),
            'delete_one _id (missing)': lambda: collection.delete_one(
                {'_id': 'no such job'}),
            'update_one identifier': lambda: collection.update_one(
                {'identifier': middle, 'status': {'$nin': ['failed']}},
                {'$set': {'progress': 5}}),
            'count_documents': lambda: collection.count_documents({}),
            'estimated_document_count':
                collection.estimated_document_count,
            'find sort limit 10': lambda: list(collection.find({}).sort(
                [('started', DESCENDING), ('_id', DESCENDING)]).limit(10)),
            'find natural limit 10':
                lambda: list(collection.find({}).limit(10)),
            'insert_one': lambda: collection.insert_one(
                {'_id': str(uuid.uuid1()), 'started': 'z'}),
        }
        for name, operation in operations.items():
            started = time.perf_counter()
            for _ in range(CALLS):
                operation()
            mean_ms = (time.perf_counter() - started) / CALLS * 1000
            print(f'{count:>6} jobs  {name:28} {mean_ms:8.1f} ms')
    collection.drop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
