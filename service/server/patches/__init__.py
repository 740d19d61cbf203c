"""The two places where we change aiohttp's own behaviour, fenced here.

aiohttp 3.14 has no hook for either, so each replaces one piece of its
server at start-up, once per process, and each has a test that fails if an
aiohttp upgrade routes around it:

- ``protocol_errors``: ``RequestHandler.handle_error``, so that requests the
  HTTP parser refuses before any handler runs (a malformed request line, an
  unknown method, an oversized header, a smuggling attempt) get the same
  one-line JSON errors with a request id as everything else
  (tests/test_errors.py);
- ``slow_clients``: the ``RequestHandler`` class that aiohttp's server
  builds, so that a connection which does not deliver a whole request head
  within ``--header-timeout`` is closed (slowloris; tests/test_security.py).

Nothing else in the service patches a library.
"""
