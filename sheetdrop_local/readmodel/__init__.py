"""The read model: what the CLI's looking commands (``runs``, ``runs show``, ``logs``, ``datasets``,
``show``) and the local studio show, as plain dataclasses both render.

Read-only: nothing here writes to the run store, the registry or storage; it keeps only its own copy
of storage's notes on the blob versions that got no run (:mod:`.unrun`, the ``unrun`` table). The
SQL is in the modules that own each table (``runstore.py`` for ``runs``, ``registry.py`` for
``datasets``, ``runlist.py`` for ``unrun`` and the run list); here is what is made of it.
:mod:`.runs` the run list (runs, and the blob versions that got none) and a run by its id;
:mod:`.rundetail` one run with what it made; :mod:`.datasets` dataset versions and a version's
content; :mod:`.parquetview` a parquet file read where it lives; :mod:`.locations` where a version
lives and the storage client a person waits on; :mod:`.labels` how a time, a run and a version are
written wherever they are shown.
"""
