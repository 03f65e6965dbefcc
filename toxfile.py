"""tox plugin: skip the upstream envs when no pygeoapi git source is set.

pygeoapi's own tests are not in its PyPI sdists, so the upstream envs
need a git repository: ``PYGEOAPI_GIT_SOURCE``, a URL or a local clone
(bare or not). Without a reachable one, tox reports those envs as
skipped with the reason, not as passed.
"""

import os
import subprocess
from pathlib import Path

from tox.plugin import impl
from tox.tox_env.errors import Skip

SOURCE_VARIABLE = 'PYGEOAPI_GIT_SOURCE'
LS_REMOTE_TIMEOUT = 30  # seconds


def missing_source_reason():
    """Return why the git source cannot be used, or None if it can."""

    source = os.environ.get(SOURCE_VARIABLE)
    if not source:
        return (f'{SOURCE_VARIABLE} is not set: set it to a pygeoapi git '
                f'URL or local repository to run pygeoapi\'s own tests')
    if not Path(source).exists() and '://' not in source:
        return f'{SOURCE_VARIABLE}={source} does not exist'
    try:
        subprocess.run(['git', 'ls-remote', '--exit-code', source, 'HEAD'],
                       capture_output=True, check=True,
                       timeout=LS_REMOTE_TIMEOUT)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired,
            OSError):
        return f'{SOURCE_VARIABLE}={source} is not a reachable git repository'
    return None


@impl
def tox_on_install(tox_env, arguments, section, of_type):
    if tox_env.name.startswith('upstream-'):
        reason = missing_source_reason()
        if reason:
            raise Skip(reason)
