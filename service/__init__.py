"""Image Factory: resize and re-encode images on the fly, with a disk cache.

The modules, in the order a request meets them:

- ``cli``: the ``image-factory`` command (serve; ``sign``; ``loadtest``)
- ``settings`` (``units``): flags and IMAGE_FACTORY_* variables, validated
- ``process/``: ``allocator`` (glibc re-exec), ``supervisor`` (--workers),
  ``render_tokens`` (renders at once over all workers)
- ``server/``: ``listen`` (can we bind), ``serve`` (run_app, the SIGTERM
  drain), ``app`` (the composition root), ``state`` (typed app keys),
  ``patches/`` (the two aiohttp patches), ``middleware`` (request ids, JSON
  errors, counts), ``handlers`` (/picture, /healthz, /metrics), ``locate``
  (original, key, cached file), ``responses`` (sendfile), ``access_log``
- ``signing``: the URL's HMAC signature
- ``spec``: the query, parsed and validated into a ``RequestSpec``
- ``negotiate``: format=auto against the Accept header
- ``sources``: the original, confined to the originals directory
- ``origins/``: remote originals: ``config`` (origin specs, --origin,
  headers), ``routes`` (path to origin and key), ``fetched`` (the client
  protocol), ``http`` (HTTP(S) origins and ?url= sources), ``guard``,
  ``addresses`` and ``hosts`` (the SSRF rules: checked addresses, the
  network table, numeric spellings and --url-sources patterns), ``body``
  (limit, sniffing, the file), ``s3`` (aiobotocore), ``source_cache``
  (downloaded originals, freshness, coalescing), ``build`` (opens them)
- ``keys``: the variant's cache key
- ``header_memo``: each original's header facts, read once
- ``cache``: the on-disk LRU of renders
- ``renders``: the render pool (admission, queue bound, coalescing)
- ``decode_budget``: memory of whole-image decodes in flight
- ``render/``: the render itself, as steps (the only pyvips user)
- ``formats``, ``errors``: output formats and loaders; the error tree
- ``metrics``, ``logs``: Prometheus counters; text or JSON logs
- ``loadtest`` (``loadtest_report``): the load-test client
"""

__version__ = "0.1.0"
