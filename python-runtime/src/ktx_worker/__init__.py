"""The script worker: the Python process that runs user scripts (``python -I -m ktx_worker``).

The Rust side (``crates/ktx-worker``) starts it, sends length-prefixed JSON frames on the
process's original stdin and reads replies on its original stdout. Before any script runs, the
worker moves both channel ends to private descriptors: fd 0 becomes ``/dev/null`` (a script's
``input()`` sees end of file) and fd 1 becomes a copy of stderr, so neither ``print()``,
``sys.stdout.buffer.write`` nor ``os.write(1, ...)`` can reach the channel. ``print()`` output is
captured per call (capped) and returned with the reply.

Modules:

- :mod:`ktx_worker.channel`: frames (4-byte big-endian length, then UTF-8 JSON) and the fd moves.
- :mod:`ktx_worker.capture`: the capped per-call stdout capture.
- :mod:`ktx_worker.loader`: scripts loaded once per content hash, callables reused.
- :mod:`ktx_worker.validate`: the result ABI (plain JSON) with the path of a bad value.
- :mod:`ktx_worker.check`: syntax check and entrypoint discovery without running the script.
- :mod:`ktx_worker.serve`: the request loop.
"""

from __future__ import annotations
