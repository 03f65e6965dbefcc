"""Pre-fill and verify the job store of one load-test run.

``prefill`` writes finished jobs straight into a manager's store, in the
format that manager writes them, so a run starts with 1,000 or 10,000
stored jobs in seconds. ``drain`` waits until no job in the store is
accepted or running. ``check`` reads the job identifiers that the
locustfile logged (``--job-log-dir``). It verifies that each accepted
job is stored exactly once with a final status and a readable result,
that each deleted job is gone, and that no job is left accepted or
running::

    python locust/jobs.py prefill --store mongodb --uri URI --count 1000 \\
        --format ours \\
        --result-file build/bench/prefill.json
    python locust/jobs.py check --store tinydb --tinydb-file jobs.json \\
        --job-log-dir locust/results/RUN-jobs --output check.json

It needs pymongo (for ``--store mongodb``) and nothing else, so it runs
in any of the runner's virtual environments.
"""

import argparse
import json
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

DATETIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'  # pygeoapi.util.DATETIME_FORMAT
FINAL_STATUSES = {'successful', 'failed', 'dismissed'}
ACTIVE_STATUSES = {'accepted', 'running'}
BATCH = 5000  # documents per insert_many
EXAMPLE_ERRORS = 5  # problems printed per kind


def make_jobs(count: int, result_file: str, with_manager_fields: bool):
    """Yield ``count`` successful hello-world jobs, one second apart.

    :param with_manager_fields: add the ``_finished_at`` field that this
                                project's manager keeps next to the job
    """

    now = datetime.now(timezone.utc)
    for number in range(count):
        moment = now - timedelta(seconds=count - number)
        stamp = moment.strftime(DATETIME_FORMAT)
        job = {
            'type': 'process',
            'identifier': str(uuid.uuid1()),
            'process_id': 'hello-world',
            'created': stamp,
            'started': stamp,
            'updated': stamp,
            'finished': stamp,
            'status': 'successful',
            'location': result_file,
            'mimetype': 'application/json',
            'message': 'Job complete',
            'progress': 100,
        }
        if with_manager_fields:
            job['_finished_at'] = moment
        yield job


def prefill(args) -> None:
    result_file = Path(args.result_file).resolve()
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(
        {'id': 'echo', 'value': 'Hello prefill! stored job'}))
    jobs = make_jobs(args.count, str(result_file),
                     with_manager_fields=args.format == 'ours')
    started = time.monotonic()

    if args.store == 'tinydb':
        # TinyDB's JSON storage is one object per table, keyed by the
        # document id as a string, which is what TinyDB itself writes.
        path = Path(args.tinydb_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = {str(number): job for number, job in enumerate(jobs, 1)}
        path.write_text(json.dumps({'_default': table}))
    else:
        collection = mongo_collection(args)
        collection.database.client.drop_database(args.database)
        batch = []
        for job in jobs:
            batch.append(job)
            if len(batch) == BATCH:
                collection.insert_many(batch)
                batch = []
        if batch:
            collection.insert_many(batch)

    print(f'pre-filled {args.count} jobs ({args.format} format) in '
          f'{time.monotonic() - started:.1f} s')


def mongo_collection(args):
    from pymongo import MongoClient

    client = MongoClient(args.uri, serverSelectionTimeoutMS=10000)
    return client[args.database][args.collection]


def read_jobs(args) -> list:
    """Return every stored job with its identifier, status and result."""

    if args.store == 'tinydb':
        path = Path(args.tinydb_file)
        if not path.exists():
            return []
        tables = json.loads(path.read_text() or '{}')
        return list(tables.get('_default', {}).values())
    fields = {'identifier': 1, 'status': 1, 'location': 1, 'mimetype': 1}
    return list(mongo_collection(args).find({}, fields))


def drain(args) -> int:
    deadline = time.monotonic() + args.seconds
    while True:
        active = sum(job.get('status') in ACTIVE_STATUSES
                     for job in read_jobs(args))
        if not active:
            print('no job is accepted or running')
            return 0
        if time.monotonic() > deadline:
            print(f'{active} jobs are still accepted or running after '
                  f'{args.seconds:g} s')
            return 1
        time.sleep(1)


def read_job_log(folder: Path):
    """Return the accepted, deleted and maybe-deleted identifiers."""

    events = {'accepted': [], 'deleted': set(), 'delete-failed': set(),
              'delete-sent': set()}
    for path in sorted(folder.glob('jobs-*.log')):
        for line in path.read_text().splitlines():
            event, _, job_id = line.partition(' ')
            if event == 'accepted':
                events['accepted'].append(job_id)
            elif event in events:
                events[event].add(job_id)

    # A DELETE sent without a logged outcome was cut off when locust
    # stopped, so its job may or may not exist, like a failed DELETE.
    events['delete-failed'] |= events['delete-sent'] - events['deleted']
    return events


def result_readable(job: dict, args) -> bool:
    """Tell whether the job's result can be read and, if JSON, parsed."""

    location = job.get('location')
    if not isinstance(location, str) or location in ('', 'None'):
        return False
    if location.startswith('gridfs:'):
        import gridfs

        bucket = gridfs.GridFSBucket(mongo_collection(args).database,
                                     bucket_name=args.gridfs_bucket)
        files = list(bucket.find({'metadata.identifier': job['identifier']},
                                 limit=1))
        if not files:
            return False
        data = files[0].read()
    else:
        try:
            data = Path(location).read_bytes()
        except OSError:
            return False
    if job.get('mimetype') in (None, 'application/json'):
        try:
            json.loads(data)
        except ValueError:
            return False
    return True


def check(args) -> int:
    events = read_job_log(Path(args.job_log_dir))
    stored = {}
    for job in read_jobs(args):
        stored.setdefault(job.get('identifier'), []).append(job)

    problems = {'missing': [], 'duplicated': [], 'not final': [],
                'result unreadable': [], 'deleted but stored': [],
                'accepted twice': []}
    accepted = set()
    for job_id in events['accepted']:
        if job_id in accepted:
            problems['accepted twice'].append(job_id)
        accepted.add(job_id)

    for job_id in sorted(accepted - events['delete-failed']):
        copies = stored.get(job_id, [])
        if job_id in events['deleted']:
            if copies:
                problems['deleted but stored'].append(job_id)
            continue
        if not copies:
            problems['missing'].append(job_id)
            continue
        if len(copies) > 1:
            problems['duplicated'].append(job_id)
        job = copies[0]
        if job.get('status') not in FINAL_STATUSES:
            problems['not final'].append(job_id)
        elif (job.get('status') == 'successful'
              and not result_readable(job, args)):
            problems['result unreadable'].append(job_id)

    active = sorted(job_id for job_id, copies in stored.items()
                    if any(job.get('status') in ACTIVE_STATUSES
                           for job in copies))
    report = {
        'accepted': len(accepted),
        'deleted': len(events['deleted'] & accepted),
        'delete_failed': len(events['delete-failed'] & accepted),
        'stored_jobs': sum(len(copies) for copies in stored.values()),
        'active_in_store': len(active),
        'problems': {kind: len(ids) for kind, ids in problems.items()},
        'examples': {kind: ids[:EXAMPLE_ERRORS]
                     for kind, ids in problems.items() if ids},
    }
    report['ok'] = not active and not any(report['problems'].values())

    print(f"jobs: {report['accepted']} accepted, {report['deleted']} "
          f"deleted, {report['delete_failed']} with a failed or cut-off "
          f"DELETE, {report['stored_jobs']} stored, {len(active)} still "
          f"accepted or running")
    for kind, ids in problems.items():
        if ids:
            print(f'  {kind}: {len(ids)}, e.g. {", ".join(ids[:3])}')
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    return 0 if report['ok'] else 1


def add_store_options(parser) -> None:
    parser.add_argument('--store', choices=['mongodb', 'tinydb'],
                        required=True, help='kind of job store')
    parser.add_argument('--uri', help='MongoDB connection URI')
    parser.add_argument('--database', default='job_manager_pygeoapi',
                        help='MongoDB database of the jobs')
    parser.add_argument('--collection', default='jobs',
                        help='MongoDB collection of the jobs')
    parser.add_argument('--gridfs-bucket', default='job_results',
                        help='GridFS bucket of results stored in MongoDB')
    parser.add_argument('--tinydb-file', help='TinyDB JSON file of the jobs')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)

    fill = commands.add_parser('prefill', help='write finished jobs')
    add_store_options(fill)
    fill.add_argument('--count', type=int, required=True,
                      help='number of jobs to write')
    fill.add_argument('--format', choices=['ours', 'upstream', 'tinydb'],
                      required=True,
                      help="whose document format: this project's manager "
                           "(adds _finished_at), pygeoapi's MongoDB "
                           "manager or TinyDB")
    fill.add_argument('--result-file', required=True,
                      help='JSON result file that every pre-filled job '
                           'points to (written by this command)')

    wait = commands.add_parser(
        'drain', help='wait until no job is accepted or running')
    add_store_options(wait)
    wait.add_argument('--seconds', type=float, default=60.0,
                      help='maximum seconds to wait')

    verify = commands.add_parser('check', help='verify the logged jobs')
    add_store_options(verify)
    verify.add_argument('--job-log-dir', required=True,
                        help="folder of the locustfile's job logs")
    verify.add_argument('--output', help='JSON file for the counts')

    args = parser.parse_args(argv)
    if args.store == 'mongodb' and not args.uri:
        parser.error('--store mongodb needs --uri')
    if args.store == 'tinydb' and not args.tinydb_file:
        parser.error('--store tinydb needs --tinydb-file')

    if args.command == 'prefill':
        prefill(args)
        return 0
    if args.command == 'drain':
        return drain(args)
    return check(args)


if __name__ == '__main__':
    sys.exit(main())
