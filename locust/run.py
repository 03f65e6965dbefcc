"""Load-test pygeoapi's job managers with the same locust workload.

The runner builds a pygeoapi checkout with this project's MongoDB manager
(``apply.py --source sdist``), installs it and pygeoapi's own release into
separate virtual environments under ``build/bench/``, and for each
variant and each pre-filled store size:

1. writes the variant's pygeoapi config and pre-fills the job store
   (``locust/jobs.py prefill``);
2. serves pygeoapi under gunicorn on 127.0.0.1 with ``--workers``
   processes;
3. runs ``locust/locustfile.py`` headless with the same users, spawn
   rate and run time, writing its HTML report and CSV statistics to
   ``locust/results/``;
4. waits until no job is running, stops gunicorn and verifies every job
   that locust saw accepted (``locust/jobs.py check``).

The variants are ``ours`` (this project's manager, results in
``output_dir``), ``ours-gridfs`` (results in a GridFS bucket),
``upstream`` (pygeoapi's own MongoDB manager), ``tinydb`` and
``dummy`` (pygeoapi's manager without storage, synchronous execution
only: the ceiling of what pygeoapi serves). ``ours-sync`` runs this
project's manager with the same synchronous-only workload as ``dummy``,
so their execution rates compare directly. At the end, the runner
prints and writes ``locust/results/summary.md``::

    python locust/run.py                        # all default variants
    python locust/run.py --variants ours,tinydb --sizes 1000 --run-time 30

The MongoDB-compatible server comes from ``tools/mongodb_server.py``:
``PYGEOAPI_MONGODB_URI`` if set, otherwise one started on 127.0.0.1.
"""

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / 'build' / 'bench'
RESULTS_DIR = ROOT / 'locust' / 'results'
LOCUSTFILE = ROOT / 'locust' / 'locustfile.py'
JOBS_SCRIPT = ROOT / 'locust' / 'jobs.py'

sys.path.insert(0, str(ROOT / 'tools'))
from mongodb_server import provide_server  # noqa: E402

MIXED_WEIGHTS = 'async=4,results=2,list=3,get=3,delete=1,sync=2'
SYNC_WEIGHTS = 'sync=1'
START_TIMEOUT = 60  # seconds for gunicorn to serve /processes
STOP_TIMEOUT = 30  # seconds for gunicorn to exit after SIGTERM

# The environment, manager section and workload of each variant.
# Variants without "sizes" run once, at the largest size.
VARIANTS = {
    'ours': {'venv': 'patched', 'manager': 'MongoDB', 'format': 'ours',
             'output_dir': True, 'weights': MIXED_WEIGHTS, 'sizes': True},
    'ours-gridfs': {'venv': 'patched', 'manager': 'MongoDB',
                    'format': 'ours', 'output_dir': False,
                    'weights': MIXED_WEIGHTS, 'sizes': True},
    'upstream': {'venv': 'upstream', 'manager': 'MongoDB',
                 'format': 'upstream', 'output_dir': True,
                 'weights': MIXED_WEIGHTS, 'sizes': True},
    'tinydb': {'venv': 'upstream', 'manager': 'TinyDB', 'format': 'tinydb',
               'output_dir': True, 'weights': MIXED_WEIGHTS, 'sizes': True},
    'dummy': {'venv': 'upstream', 'manager': 'Dummy', 'format': None,
              'output_dir': True, 'weights': SYNC_WEIGHTS, 'sizes': False},
    'ours-sync': {'venv': 'patched', 'manager': 'MongoDB', 'format': 'ours',
                  'output_dir': True, 'weights': SYNC_WEIGHTS,
                  'sizes': False},
}
DEFAULT_VARIANTS = 'ours,upstream,tinydb,dummy,ours-sync'
SERVER_PACKAGES = ['gunicorn', 'pymongo', 'tinydb']
DRIVER_PACKAGES = ['locust', 'gitpython']
CONTACT_KEYS = ['name', 'position', 'address', 'city', 'stateorprovince',
                'postalcode', 'country', 'phone', 'fax', 'email', 'url',
                'hours', 'instructions', 'role']


def log(message: str) -> None:
    print(f'[run] {message}', flush=True)


def pip_install(venv: Path, packages: list) -> Path:
    """Create ``venv`` if needed and install ``packages`` into it once.

    :returns: the environment's python
    """

    python = venv / 'bin' / 'python'
    marker = venv / 'installed.json'
    if marker.exists() and json.loads(marker.read_text()) == packages:
        return python
    if not python.exists():
        log(f'creating {venv.relative_to(ROOT)}')
        subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    log(f'installing {" ".join(packages)} into {venv.relative_to(ROOT)}')
    subprocess.run([str(python), '-m', 'pip', 'install', '-q', *packages],
                   check=True)
    marker.write_text(json.dumps(packages))
    return python


def build_environments(ref: str) -> dict:
    """Build the patched checkout and install the three environments."""

    driver = pip_install(BUILD_DIR / 'venv-driver', DRIVER_PACKAGES)

    checkout = BUILD_DIR / f'pygeoapi-{ref}-patched'
    apply_script = ROOT / 'apply.py'
    if not apply_script.exists():
        sys.exit(f'error: {apply_script} is missing; it builds the patched '
                 f'pygeoapi checkout that this runner serves')
    log(f'apply.py --source sdist --ref {ref} --dest {checkout}')
    subprocess.run([str(driver), str(apply_script), '--source', 'sdist',
                    '--ref', ref, '--dest', str(checkout)], check=True)

    # pip builds a local folder in place, leaving build/ and *.egg-info
    # behind, and apply.py then rejects the checkout as changed. So pip
    # installs a copy, each time, because it skips a local path whose
    # version it has installed already.
    source = BUILD_DIR / 'pygeoapi-install-source'
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(checkout, source, ignore=shutil.ignore_patterns('.git'))
    patched = pip_install(BUILD_DIR / 'venv-patched',
                          SERVER_PACKAGES + [f'pygeoapi=={ref}'])
    subprocess.run([str(patched), '-m', 'pip', 'install', '-q', '--no-deps',
                    '--force-reinstall', str(source)], check=True)
    upstream = pip_install(BUILD_DIR / 'venv-upstream', SERVER_PACKAGES +
                           [f'pygeoapi=={ref}'])
    return {'driver': driver, 'patched': patched, 'upstream': upstream}


def manager_section(variant: dict, uri: str, run_dir: Path) -> dict:
    section = {'name': variant['manager']}
    if variant['output_dir']:
        section['output_dir'] = str(run_dir / 'outputs')
        (run_dir / 'outputs').mkdir(parents=True, exist_ok=True)
    if variant['manager'] == 'MongoDB':
        section['connection'] = uri
    elif variant['manager'] == 'TinyDB':
        section['connection'] = str(run_dir / 'jobs.json')
    else:
        section['connection'] = ''
    return section


def write_config(path: Path, port: int, manager: dict) -> None:
    """Write a pygeoapi config with the hello-world process only.

    JSON is valid YAML, so pygeoapi reads this file as its YAML config.
    """

    config = {
        'server': {
            'bind': {'host': '127.0.0.1', 'port': port},
            'url': f'http://127.0.0.1:{port}',
            'mimetype': 'application/json; charset=UTF-8',
            'encoding': 'utf-8',
            'language': 'en-US',
            'limits': {'default_items': 10, 'max_items': 100},
            'map': {'url': 'https://tile.openstreetmap.org/{z}/{x}/{y}.png',
                    'attribution': 'OpenStreetMap'},
            'manager': manager,
        },
        'logging': {'level': 'ERROR'},
        'metadata': {
            'identification': {'title': 'job manager load test',
                               'description': 'hello-world only',
                               'keywords': ['load test'],
                               'keywords_type': 'theme',
                               'terms_of_service': 'none',
                               'url': 'http://127.0.0.1'},
            'license': {'name': 'CC-BY 4.0',
                        'url': 'https://creativecommons.org/licenses/by/4.0/'},
            'provider': {'name': 'load test', 'url': 'http://127.0.0.1'},
            'contact': {key: 'load test' for key in CONTACT_KEYS},
        },
        'resources': {
            'hello-world': {'type': 'process',
                            'processor': {'name': 'HelloWorld'}},
        },
    }
    path.write_text(json.dumps(config, indent=2))


def store_options(variant: dict, uri: str, run_dir: Path) -> list:
    if variant['manager'] == 'TinyDB':
        return ['--store', 'tinydb', '--tinydb-file',
                str(run_dir / 'jobs.json')]
    return ['--store', 'mongodb', '--uri', uri]


def start_gunicorn(python: Path, config: Path, openapi: Path, port: int,
                   workers: int, log_file: Path) -> subprocess.Popen:
    env = dict(os.environ, PYGEOAPI_CONFIG=str(config),
               PYGEOAPI_OPENAPI=str(openapi))
    command = [str(python.parent / 'gunicorn'), '--workers', str(workers),
               '--bind', f'127.0.0.1:{port}', '--timeout', '120',
               'pygeoapi.flask_app:APP']
    with log_file.open('wb') as output:
        server = subprocess.Popen(command, env=env, stdout=output,
                                  stderr=subprocess.STDOUT,
                                  start_new_session=True)

    deadline = time.monotonic() + START_TIMEOUT
    url = f'http://127.0.0.1:{port}/processes?f=json'
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f'error: gunicorn exited with code {server.returncode}'
                     f'; see {log_file}')
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    stop_gunicorn(server)
    sys.exit(f'error: gunicorn did not serve {url} within {START_TIMEOUT} '
             f's; see {log_file}')


def stop_gunicorn(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log(f'gunicorn {server.pid} did not stop in {STOP_TIMEOUT} s; '
            f'killing it')
        server.kill()
        server.wait()


def run_one(name: str, size: int, pythons: dict, uri: str, args) -> dict:
    """Pre-fill, serve, load and check one variant at one store size."""

    variant = VARIANTS[name]
    label = f'{name}-{size}' if variant['format'] else name
    run_dir = BUILD_DIR / 'runs' / label
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    python = pythons[variant['venv']]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    job_log_dir = RESULTS_DIR / f'{label}-jobs'
    shutil.rmtree(job_log_dir, ignore_errors=True)
    prefix = RESULTS_DIR / label

    config = run_dir / 'pygeoapi-config.yml'
    openapi = run_dir / 'pygeoapi-openapi.yml'
    write_config(config, args.port, manager_section(variant, uri, run_dir))
    subprocess.run(
        [str(python.parent / 'pygeoapi'), 'openapi', 'generate',
         str(config), '--output-file', str(openapi)],
        check=True, stdout=subprocess.DEVNULL,
        env=dict(os.environ, PYGEOAPI_CONFIG=str(config)))

    stores = store_options(variant, uri, run_dir)
    if variant['format']:
        subprocess.run(
            [str(python), str(JOBS_SCRIPT), 'prefill', *stores,
             '--count', str(size), '--format', variant['format'],
             '--result-file', str(run_dir / 'prefill-result.json')],
            check=True)

    log(f'{label}: gunicorn with {args.workers} workers on '
        f'127.0.0.1:{args.port}')
    server = start_gunicorn(python, config, openapi, args.port,
                            args.workers, run_dir / 'gunicorn.log')
    try:
        locust = [
            str(pythons['driver'].parent / 'locust'), '-f', str(LOCUSTFILE),
            '--headless', '--only-summary',
            '--host', f'http://127.0.0.1:{args.port}',
            '--users', str(args.users), '--spawn-rate', str(args.spawn_rate),
            '--run-time', f'{args.run_time}s', '--stop-timeout', '10',
            '--html', f'{prefix}.html', '--csv', str(prefix),
            '--weights', variant['weights'],
            '--job-log-dir', str(job_log_dir),
            '--loglevel', 'WARNING',
        ]
        log(f'{label}: locust {args.users} users, {args.spawn_rate}/s, '
            f'{args.run_time} s')
        with (RESULTS_DIR / f'{label}-locust.log').open('wb') as output:
            # Locust exits 1 when any request failed; the summary reports
            # the failures, so that exit code is not an error here.
            subprocess.run(locust, stdout=output, stderr=subprocess.STDOUT,
                           timeout=args.run_time + 120)
        if variant['format']:
            subprocess.run([str(python), str(JOBS_SCRIPT), 'drain', *stores,
                            '--seconds', '60'])
    finally:
        stop_gunicorn(server)

    check = None
    if variant['format']:
        check_file = RESULTS_DIR / f'{label}-check.json'
        subprocess.run(
            [str(python), str(JOBS_SCRIPT), 'check', *stores,
             '--job-log-dir', str(job_log_dir), '--output', str(check_file)])
        if check_file.exists():
            check = json.loads(check_file.read_text())
    return {'label': label, 'variant': name, 'size': size,
            'stats': read_stats(Path(f'{prefix}_stats.csv')),
            'check': check}


def read_stats(path: Path) -> list:
    if not path.exists():
        return []
    with path.open(newline='') as stats:
        return list(csv.DictReader(stats))


def summary_table(results: list) -> str:
    """Format requests/s, percentiles and failures of every run."""

    lines = [
        '| run | endpoint | requests | failures | req/s | p50 ms | p95 ms '
        '| p99 ms |',
        '|---|---|---:|---:|---:|---:|---:|---:|',
    ]
    for result in results:
        for row in result['stats']:
            name = row['Name'] if row['Type'] else 'all'
            if row['Name'] == 'Aggregated':
                name = '**all**'
            lines.append(
                f"| {result['label']} | {row['Type']} {name} | "
                f"{row['Request Count']} | {row['Failure Count']} | "
                f"{float(row['Requests/s']):.1f} | {row['50%']} | "
                f"{row['95%']} | {row['99%']} |")

    lines += ['', '| run | accepted | deleted | stored | missing | '
              'duplicated | not final | result unreadable | '
              'deleted but stored | still active |',
              '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for result in results:
        check = result['check']
        if check is None:
            continue
        problems = check['problems']
        lines.append(
            f"| {result['label']} | {check['accepted']} | "
            f"{check['deleted']} | {check['stored_jobs']} | "
            f"{problems['missing']} | {problems['duplicated']} | "
            f"{problems['not final']} | {problems['result unreadable']} | "
            f"{problems['deleted but stored']} | "
            f"{check['active_in_store']} |")
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--variants', default=DEFAULT_VARIANTS,
        help=f'comma-separated variants from {", ".join(VARIANTS)} '
             f'(default: {DEFAULT_VARIANTS})')
    parser.add_argument(
        '--sizes', default='1000,10000',
        help='comma-separated numbers of jobs pre-filled before each run '
             '(default: 1000,10000)')
    parser.add_argument('--users', type=int, default=20,
                        help='concurrent locust users (default: 20)')
    parser.add_argument('--spawn-rate', type=float, default=10,
                        help='users started per second (default: 10)')
    parser.add_argument('--run-time', type=int, default=60,
                        help='seconds of load per run (default: 60)')
    parser.add_argument('--workers', type=int, default=4,
                        help='gunicorn worker processes (default: 4)')
    parser.add_argument('--port', type=int, default=5089,
                        help='127.0.0.1 port that gunicorn binds '
                             '(default: 5089)')
    parser.add_argument('--ref', default='0.21.0',
                        help='pygeoapi release to patch and compare '
                             '(default: 0.21.0)')
    args = parser.parse_args(argv)

    args.variants = [name for name in args.variants.split(',') if name]
    unknown = [name for name in args.variants if name not in VARIANTS]
    if unknown:
        parser.error(f'unknown variants {", ".join(unknown)}: use '
                     f'{", ".join(VARIANTS)}')
    try:
        args.sizes = [int(size) for size in args.sizes.split(',')]
    except ValueError:
        parser.error(f'invalid --sizes {args.sizes!r}: give integers '
                     f'separated by commas, such as 1000,10000')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    pythons = build_environments(args.ref)
    runs = [(name, size) for size in args.sizes for name in args.variants
            if VARIANTS[name]['sizes']]
    runs += [(name, max(args.sizes)) for name in args.variants
             if not VARIANTS[name]['sizes']]

    results = []
    started = time.monotonic()
    with provide_server() as uri:
        for name, size in runs:
            results.append(run_one(name, size, pythons, uri, args))

    table = summary_table(results)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    header = (f'pygeoapi {args.ref}, {args.workers} gunicorn workers, '
              f'{args.users} users, spawn rate {args.spawn_rate}/s, '
              f'{args.run_time} s per run\n\n')
    (RESULTS_DIR / 'summary.md').write_text(header + table)
    (RESULTS_DIR / 'summary.json').write_text(json.dumps(results, indent=2))
    print(header + table)
    log(f'{len(results)} runs in {time.monotonic() - started:.0f} s; '
        f'reports in {RESULTS_DIR.relative_to(ROOT)}')
    failed_checks = [result['label'] for result in results
                     if result['check'] and not result['check']['ok']]
    if failed_checks:
        log(f'job checks failed for {", ".join(failed_checks)}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
