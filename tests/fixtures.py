"""Where the shared fixtures are: skip without them, except under CI where that fails."""
import json
import os

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..', 'shared',
                    'fixtures')


def root(sub=''):
  """The path of ../shared/fixtures/<sub>; skips (or fails under CI=true) when absent."""
  path = os.path.normpath(os.path.join(ROOT, sub))
  if not os.path.isdir(path):
    if os.environ.get('CI') == 'true':
      pytest.fail(f'{path} is missing (required under CI)')
    pytest.skip(f'{path} is absent (the shared fixtures lie beside the clone)')
  return path


def manifest(sub):
  """The MANIFEST.json of fixture folder `sub` (torch, edm, psld, inception)."""
  with open(os.path.join(root(sub), 'MANIFEST.json')) as f:
    return json.load(f)


def entry(sub, fixture_id):
  """The MANIFEST entry with this id (or name)."""
  for e in manifest(sub)['fixtures']:
    if fixture_id in (e.get('id'), e.get('name')):
      return e
  raise KeyError(fixture_id)
