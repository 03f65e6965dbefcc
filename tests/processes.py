"""Processes that the tests execute through pygeoapi.

``echo`` returns a result of a chosen MIME type and size, after an
optional wait, or fails on request. The tests load it by its dotted
path, ``tests.processes.EchoProcessor``, so the project root must be on
``sys.path`` (pytest's rootdir, or ``PYTHONPATH`` in subprocesses).
"""

import json
import time
from pathlib import Path

from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError

# Bytes 0 to 255 in every position of a block, so any mangling of binary
# data (a decode, a newline translation) changes the result.
BINARY_BLOCK = bytes(range(256))
MAX_WAIT = 60  # seconds a job waits for its ``wait_for`` file


def optional_input(title: str, description: str, schema_type: str) -> dict:
    """Return the description of an optional input of one value."""

    return {'title': title, 'description': description,
            'schema': {'type': schema_type}, 'minOccurs': 0, 'maxOccurs': 1}


METADATA = {
    'version': '1.0.0',
    'id': 'echo',
    'title': 'Echo',
    'description': 'Returns a JSON, text or binary result of a given size.',
    'jobControlOptions': ['sync-execute', 'async-execute'],
    'keywords': ['test'],
    'links': [],
    'inputs': {
        name: optional_input(title, description, schema_type)
        for name, title, description, schema_type in [
            ('mimetype', 'MIME type', 'of the result', 'string'),
            ('value', 'Value', 'text of the result', 'string'),
            ('size', 'Size', 'bytes of a binary result', 'integer'),
            ('sleep', 'Sleep', 'seconds to wait first', 'number'),
            ('wait_for', 'Wait for', 'file to wait for first', 'string'),
            ('started', 'Started', 'file to create on start', 'string'),
            ('fail', 'Fail', 'raise instead of returning', 'boolean'),
        ]
    },
    'outputs': {
        'echo': {
            'title': 'Echo', 'description': 'the result',
            'schema': {'type': 'object',
                       'contentMediaType': 'application/json'},
        },
    },
    'example': {'inputs': {'value': 'hello'}},
}


def binary_result(size: int) -> bytes:
    """Return ``size`` bytes that contain every byte value."""

    blocks = BINARY_BLOCK * (size // len(BINARY_BLOCK) + 1)
    return blocks[:size]


class EchoProcessor(BaseProcessor):
    """Return what the inputs ask for."""

    def __init__(self, processor_def):
        super().__init__(processor_def, METADATA)

    def execute(self, data, outputs=None):
        if data.get('started'):
            Path(data['started']).touch()
        if data.get('wait_for'):
            deadline = time.monotonic() + MAX_WAIT
            while not Path(data['wait_for']).exists():
                if time.monotonic() > deadline:
                    raise ProcessorExecuteError('wait_for file never came')
                time.sleep(0.05)
        time.sleep(float(data.get('sleep', 0)))
        if data.get('fail'):
            raise ProcessorExecuteError('failed on request')

        mimetype = data.get('mimetype', 'application/json')
        value = data.get('value', 'hello')
        if mimetype == 'application/json':
            return mimetype, {'id': 'echo', 'value': value}
        if mimetype.startswith('text/'):
            return mimetype, value.encode('utf-8')
        return mimetype, binary_result(int(data.get('size', 1024)))

    def __repr__(self):
        return f'<EchoProcessor> {json.dumps(self.name)}'
